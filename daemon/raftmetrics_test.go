package daemon

import "testing"

func TestRaftMetricNames(t *testing.T) {
	s := &raftSink{}
	for _, c := range []struct {
		key   []string
		want  string
		scale float32
	}{
		{[]string{"hotline", "timer", "raft", "commitTime"}, "hotline_raft_commit_time_seconds", 1},
		{[]string{"hotline", "timer", "raft", "net", "getRPCType"}, "hotline_raft_net_get_rpc_type_seconds", 1},
		{[]string{"hotline", "counter", "raft", "apply"}, "hotline_raft_apply_total", 1},
		{[]string{"hotline", "counter", "raft", "transition", "heartbeat_timeout"}, "hotline_raft_transition_heartbeat_timeout_total", 1},
		{[]string{"hotline", "sample", "raft", "leader", "lastContact"}, "hotline_raft_leader_last_contact_seconds", 1e-3},
		{[]string{"hotline", "sample", "raft", "fsm", "applyBatchNum"}, "hotline_raft_fsm_apply_batch_num", 1},
		{[]string{"hotline", "gauge", "raft", "leader", "oldestLogAge"}, "hotline_raft_leader_oldest_log_age_seconds", 1e-3},
		{[]string{"hotline", "gauge", "raft", "peers"}, "hotline_raft_peers", 1},
	} {
		k, f := s.rename(c.key)
		if len(k) != 1 || k[0] != c.want || f != c.scale {
			t.Errorf("rename(%q) = %q ×%v, want %q ×%v", c.key, k, f, c.want, c.scale)
		}
	}
	for in, want := range map[string]string{"rpcType": "rpc_type", "peer_id": "peer_id", "a-b.c": "a_b_c", "HTTPServer": "http_server"} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
}

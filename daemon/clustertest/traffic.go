package clustertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// Traffic is perNode submissions from every lab node to the other sites,
// destinations and precedences in rotation (every (destination,
// precedence) pair alike), each retried with its key until acknowledged
// and then recorded in a Ledger.
type Traffic struct {
	// Progress counts the acknowledged submissions so far.
	Progress atomic.Int64

	wg   sync.WaitGroup
	errs chan error
}

// StartTraffic starts the submitters of the two-site lab; keys are
// "<prefix>-<node>-<i>".
func StartTraffic(ctx context.Context, prefix string, perNode int, clientFor func(node string) *client.Client, g *Ledger) *Traffic {
	return StartTrafficSites(ctx, prefix, daemon.LabSites, perNode, clientFor, g)
}

// StartTrafficSites is StartTraffic between the given sites: message i of
// a node goes to its (i mod (len(sites)-1))th other site.
func StartTrafficSites(ctx context.Context, prefix string, sites []string, perNode int, clientFor func(node string) *client.Client, g *Ledger) *Traffic {
	tr := &Traffic{errs: make(chan error, len(sites)*3)}
	for _, site := range sites {
		var others []string
		for _, s := range sites {
			if s != site {
				others = append(others, s)
			}
		}
		for _, node := range daemon.LabNodes(site) {
			c := clientFor(node)
			tr.wg.Add(1)
			go func() {
				defer tr.wg.Done()
				for i := range perNode {
					to := others[i%len(others)]
					p := queue.Precedences[(i/len(others))%len(queue.Precedences)]
					key := fmt.Sprintf("%s-%s-%d", prefix, node, i)
					m, err := SubmitRetrying(ctx, c, client.SubmitRequest{To: to, Precedence: p.String(), Key: key, Payload: []byte(key)})
					if err != nil {
						tr.errs <- err
						return
					}
					g.Add(Sent{Key: key, ID: m.ID, From: site, To: to, Precedence: p.String()})
					tr.Progress.Add(1)
				}
			}()
		}
	}
	return tr
}

// Wait waits for every submitter and fails t on the first error.
func (tr *Traffic) Wait(t testing.TB) {
	t.Helper()
	tr.wg.Wait()
	close(tr.errs)
	for err := range tr.errs {
		t.Fatal(err)
	}
}

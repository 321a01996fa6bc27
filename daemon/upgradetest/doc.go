// Package upgradetest is the mixed-version lab of rolling upgrades: it
// builds the previous release (the commit PREVIOUS-RELEASE names, at the
// repository root) and the current tree, and runs the six-process lab
// (package clustertest) across the change of build.
//
//   - TestRollingUpgrade starts both sites on the previous release and,
//     under paced traffic both ways, upgrades alpha one node at a time
//     (followers first, the leader last), then bravo. Every acknowledged
//     message must arrive exactly once and in order, every read receipt
//     come back and every sampled message's evidence verify. It logs the
//     longest pause in delivery each way while the upgrade ran. Before
//     alpha's site version is raised a node rolled back to the previous
//     release must cope; after it, the previous release must refuse.
//   - TestReadOldDataDir has the previous release write both sites' data
//     directories (messages read and unread), stops every node and starts
//     them all on the current build, which must serve the same messages,
//     states and inboxes.
//
// It has tests only. They need a git checkout holding the release's
// commit (else they skip, or fail when HOTLINE_UPGRADE_TEST=1), start six
// processes (skipped with -short) and run once, without the race
// detector: the nodes are plain builds either way.
package upgradetest

// Package forward is the leader's forwarding: it sends each outbound
// channel's committed messages to the destination site until they are
// acknowledged, records the acks on the site's log, and carries read
// receipts back to the sites that sent the messages.
//
// # What it relies on
//
// The destination applies a channel only from its last sequence + 1 and
// answers every batch with a cumulative ack: the last sequence it has
// durably applied (transport.Ack.Last). A message it already has is
// dropped, a batch that starts beyond last+1 applies nothing. So sending
// again is always safe, and an ack says exactly where to go on from.
// Receipts work the same way with their RSeq.
//
// # The loop
//
// The decisions of one channel are a Window, a value with no I/O, no
// goroutines and no clock (time comes in as a backoff the driver sleeps).
// The driver, Forwarder, is a loop around it, the way etcd-raft's core is
// driven:
//
//	w := NewWindow(size, acked, retryMin, retryMax)
//	for {
//		w.OnNew(channel's last sequence)  // from the store
//		w.SetHeld(higher precedence outstanding)
//		switch op := w.Next(); op.Action {
//		case Send:    read the batch after op.After; f := w.Sent(its last); send it
//		case Await:   r := a result; step := w.OnAck(r.f, r.ack.Last) or w.OnFailure(r.f)
//		case Idle:    wait for the store to change
//		case Backoff: sleep op.Wait; w.Retry()
//		}
//		do what step says: hand proofs over, cancel the round, log
//	}
//
// A round sends batches from the last ack, up to Window batches in flight.
// An ack counts for its own batch (its proof covers no other): one that
// overtook an earlier batch's waits for it. An ack below a batch's last
// is a gap (the destination has not seen an earlier batch): the round
// ends and the next resends from the window's ack at once. A failure or a refusal ends the round too, and the next starts
// after a backoff (RetryMin doubling to RetryMax, reset by an ack). An ack
// below what the destination had acknowledged means it was restored from
// a backup and lost messages: the window resends from its new ack, and
// the store gives tombstones for what retention has purged since. Batches
// still in flight when a round ends are cancelled and their results
// ignored.
//
//	┌─────────┐ ──OnAck: gap, restored──> ┌──────────┐
//	│ sending │ ──OnFailure, Fail───────> │ draining │
//	└─────────┘ <──drained after a gap─── └──────────┘
//	     ▲                                     │ drained after a failure
//	     │                ┌─────────┐          │
//	     └──── Retry ──── │ waiting │ <────────┘
//	                      └─────────┘
//
// While a channel of higher precedence to the same destination has
// messages not yet acknowledged, a channel sends nothing new (its batches
// in flight finish): after an outage flash drains first, then immediate,
// and so on (ACP 121 precedence). Each channel has its own Forwarder, so a
// higher precedence never waits behind a lower one.
//
// # Proofs
//
// Every batch is signed and every delivery proven, with the site keys of
// package transport/trust, through a Notary (Config.Notary). A forwarder
// signs each messages batch it sends (a KindMessages statement: Batch.Proof)
// and checks the destination's delivery proof in each ack (KindDelivered,
// Ack.Proof, covering the batch's messages up to Ack.Last); only an ack
// whose proof holds counts, and the AckReporter records it with both
// statements as evidence (a queue.DeliveredProof). A message is recorded
// delivered only with its proof: an ack without one records nothing. An ack
// whose proof does not hold, or a refusal of our own signature, is a
// failure like any other (sent again: a key mismatch while keys rotate
// heals) and is told to Hooks.Untrusted (an alarm). The ReceiptSender
// signs its receipts (KindRead). The receiving end (the daemon) checks a
// batch with Notary.Command before it proposes anything and signs the
// delivery proof with Notary.SignDelivered once it committed; its leader
// checks every relayed inbound command again (Notary.CheckCommand).
//
// # The other drivers
//
// AckReporter commits a channel's proofs of delivery (OpDelivered) in
// the background: the forwarder hands each over once its window acked
// the batch and those before it; the reporter commits, in one command,
// every waiting proof that continues the delivered run the log records,
// in order of their first message (UpTo is the end of that run), so
// proofs that arrive during a commit coalesce into the next. A proof
// beyond a gap waits; none is dropped; the forwarder sends no new batch
// while a command's worth wait. ReceiptSender sends the read receipts
// queued for one origin site, one batch at a time, and drops them
// (OpReceiptsAcked) once acknowledged. A site restored from a backup has
// its channels and receipt queues fenced; before sending, each first asks
// the other site for its last (an empty batch) and commits it (resync).
// Run starts all of them for every other site and returns when its
// context ends.
//
// # Refusals
//
// A receiver that does not apply a batch refuses it in its ack: a text, a
// code (transport.Ack.Code, from the receiving site's table of errors,
// the one its calls use) and a hint of its leader. Every driver reads a
// refusal the same way (Config.refused): Ack.Err with Config.Codes
// rebuilds a typed error, the next send goes to the leader the refusal
// names, and one without a leader that Config.Retryable judges retryable
// (a node starting or stopping, by errors.Is) drops the preferred node.
// Only a refusal without a code, from a receiver of an earlier version,
// is judged by its text.
//
// # What it needs
//
// The package declares what it uses as small interfaces: Link (send a
// batch, prefer a node), Log (commit a command), State (read the
// committed queue state) and Verifier (check a statement's signature with
// the pinned keys). *transport.Link, *queue.Store and *trust.Keyring
// satisfy them; so does linktest.Net's Link, an in-memory network that
// drops, delays, reorders and duplicates batches, which the tests use to
// forward between two real stores. Metrics go through Hooks, logs through a *slog.Logger.
package forward

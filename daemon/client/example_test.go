package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// These examples talk to the dev lab (hotlined --dev, run in the
// repository root, so its sockets are in hotline-dev/). They have no
// Output comment, so go test compiles them without running them;
// TestExamplesAgainstDevLab runs them, in order, against a dev lab of its
// own.

// Submit a message to site bravo through a node of alpha. Submit returns
// once alpha has committed the message: from then on it is never lost.
// The key makes a retry safe: the same key again returns the stored
// message and stores nothing.
func ExampleClient_Submit() {
	c := client.New("hotline-dev/alpha-1.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := client.SubmitRequest{To: "bravo", Precedence: "immediate", Key: "report-42", Payload: []byte("Report 42: all quiet.")}
	m, err := c.Submit(ctx, req)
	for err != nil && client.Retryable(err) && ctx.Err() == nil {
		time.Sleep(time.Second) // no quorum, node starting or stopping: retry with the same key
		m, err = c.Submit(ctx, req)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored as", m.ID, "existing:", m.Existing)
}

// Submit and wait until the message is durable at its destination. If the
// wait times out first, the message is still stored (and will be
// delivered): do not submit it again.
func ExampleClient_Submit_wait() {
	c := client.New("hotline-dev/alpha-1.sock")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := c.Submit(ctx, client.SubmitRequest{
		To: "bravo", Key: "status-7", Payload: []byte("hello bravo"),
		Wait: "delivered", Timeout: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	if m.WaitTimedOut {
		fmt.Println(m.ID, "is stored but still", m.State)
		return
	}
	fmt.Println(m.ID, "is", m.State)
}

// Read the unread messages of site bravo through one of its nodes, waiting
// up to 10 s for the first; Next continues after what was returned. Read
// messages stay unread until acknowledged (see the Ack example).
func ExampleClient_Inbox() {
	c := client.New("hotline-dev/bravo-2.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var after uint64
	wait := 10 * time.Second
	for {
		in, err := c.Inbox(ctx, after, 100, wait)
		if err != nil {
			log.Fatal(err)
		}
		if len(in.Messages) == 0 {
			return
		}
		for _, m := range in.Messages {
			fmt.Printf("from %s (%s): %s\n", m.From, m.Precedence, m.Payload)
		}
		after, wait = in.Next, 0 // the rest without waiting
	}
}

// Acknowledge what was read: the messages leave the inbox, on every node
// of bravo, and their read receipts travel back to their origin.
func ExampleClient_Ack() {
	c := client.New("hotline-dev/bravo-2.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in, err := c.Inbox(ctx, 0, 1000, 0)
	if err != nil {
		log.Fatal(err)
	}
	var ids []string
	for _, m := range in.Messages {
		ids = append(ids, m.ID)
	}
	if len(ids) == 0 {
		return
	}
	r, err := c.Ack(ctx, ids)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("acked", r.Acked)
}

// Follow a message at its origin until bravo's read receipt arrives.
func ExampleClient_Get() {
	c := client.New("hotline-dev/alpha-1.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := c.Submit(ctx, client.SubmitRequest{To: "bravo", Key: "status-7", Payload: []byte("hello bravo")})
	if err != nil { // the same key: this finds the stored message
		log.Fatal(err)
	}
	for m.State != "read" {
		time.Sleep(100 * time.Millisecond)
		if m, err = c.Get(ctx, m.ID); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(m.ID, "was read at", m.ReadAt.Format(time.RFC3339))
}

// Errors: an *APIError carries the daemon's code; a daemon that cannot be
// reached matches ErrUnreachable.
func ExampleAPIError() {
	c := client.New("hotline-dev/alpha-1.sock")
	_, err := c.Submit(context.Background(), client.SubmitRequest{To: "zulu", Payload: []byte("x")})
	var ae *client.APIError
	switch {
	case errors.As(err, &ae) && ae.Code == client.CodeUnknownSite:
		fmt.Println("no such site:", ae.Message)
	case errors.Is(err, client.ErrUnreachable):
		fmt.Println("hotlined is not running here:", err)
	case err != nil:
		log.Fatal(err)
	}
}

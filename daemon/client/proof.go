package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// ProofSuffix follows PathMessages/{id} in the path of a message's
// evidence bundle: GET /v1/messages/{id}/proof.
const ProofSuffix = "/proof"

// Proof returns the evidence bundle of the message with the given id, the
// JSON document exactly as the daemon wrote it (package transport/trust
// reads and verifies it). An unknown id is an *APIError with
// CodeNotFound; a message no signed statement covers yet (not yet sent)
// one with CodeConflict.
func (c *Client) Proof(ctx context.Context, id string) ([]byte, error) {
	var b json.RawMessage
	if _, err := c.do(ctx, http.MethodGet, PathMessages+"/"+url.PathEscape(id)+ProofSuffix, nil, nil, "", &b); err != nil {
		return nil, err
	}
	return b, nil
}

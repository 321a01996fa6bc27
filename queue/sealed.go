package queue

import (
	"bytes"
	"crypto/sha256"
	"fmt"
)

// A sealed payload (FlagSealed) is an envelope of package transport/trust,
// which queue does not import. Queue reads only its header's first part:
//
//	"HLE1" | key id (4) | SHA-256 of the plaintext (32) | ...
//
// so that the idempotency rule compares plaintexts although two seals of
// one plaintext differ. transport/trust's tests pin this layout.
const (
	// SealedMagic begins every sealed payload.
	SealedMagic = "HLE1"
	// SealedSumOffset is where the plaintext's SHA-256 begins.
	SealedSumOffset = len(SealedMagic) + 4
	// sealedMin is the shortest payload with the part queue reads.
	sealedMin = SealedSumOffset + sha256.Size
)

// validSealed refuses a sealed payload too short for its header or not
// beginning with SealedMagic.
func validSealed(payload []byte) error {
	if len(payload) < sealedMin || !bytes.HasPrefix(payload, []byte(SealedMagic)) {
		return fmt.Errorf("%w: payload flagged sealed is not an envelope (%d bytes)", ErrInvalid, len(payload))
	}
	return nil
}

// plaintextSum is the digest the idempotency rule compares for an item:
// the plaintext's SHA-256, which a sealed payload carries in its header.
func (it *SubmitItem) plaintextSum() []byte {
	if it.Flags&FlagSealed != 0 && validSealed(it.Payload) == nil {
		return bytes.Clone(it.Payload[SealedSumOffset:sealedMin])
	}
	return payloadSum(it.Payload)
}

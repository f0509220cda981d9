package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
)

// gossipKeyBytes is the size of a gossip encryption key: AES-256.
const gossipKeyBytes = 32

// runKeygen prints a new random gossip encryption key, base64 (standard
// encoding), like `consul keygen`. It needs no server.
func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("keygen takes no arguments, got %q", fs.Args())}
	}
	key := make([]byte, gossipKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(key))
	return nil
}

package worker

import (
	"crypto/rand"
	"encoding/hex"
	"os"
)

func defaultID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

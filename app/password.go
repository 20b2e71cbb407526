package app

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Passwords are hashed with argon2id using the first configuration of the OWASP Password Storage
// Cheat Sheet: 19 MiB of memory, 2 passes, 1 lane. It costs about 40 ms of one core here, slow
// enough to make guessing expensive, fast enough for a login, and 19 MiB per login in flight
// (accounts caps how many run at once). The parameters travel in each hash, so raising them later
// keeps old hashes checkable.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Limits on parameters read back from a stored hash, so that a corrupt or hostile row cannot
// make one check take gigabytes or minutes.
const (
	maxArgonMemory  = 256 * 1024 // KiB, 256 MiB
	maxArgonTime    = 10
	maxArgonThreads = 16
	minArgonKeyLen  = 16
	maxArgonKeyLen  = 128
)

// Password lengths accepted when one is set. The upper bound keeps hashing time flat.
const (
	minPasswordLen = 8
	maxPasswordLen = 1024
)

var errMalformedHash = errors.New("malformed password hash")

// hashPassword returns password hashed with a fresh random salt, in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$key) that other argon2 libraries read too.
func hashPassword(password string) string {
	salt := make([]byte, argonSaltLen)
	_, _ = rand.Read(salt) // never fails: crypto/rand.Read panics rather than return an error
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// checkPassword reports whether password matches encoded, a hash made by hashPassword. It
// returns an error, never a panic, when encoded is not such a hash.
func checkPassword(encoded, password string) (bool, error) {
	p, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key))) //nolint:gosec // parseHash bounds len(p.key) by maxArgonKeyLen
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

type argonHash struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parseHash(encoded string) (argonHash, error) {
	var h argonHash
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return h, errMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return h, fmt.Errorf("%w: version %q", errMalformedHash, parts[2])
	}
	var memory, time, threads uint64
	n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &time, &threads)
	if err != nil || n != 3 || fmt.Sprintf("m=%d,t=%d,p=%d", memory, time, threads) != parts[3] {
		return h, fmt.Errorf("%w: parameters %q", errMalformedHash, parts[3])
	}
	if memory < 8*threads || memory > maxArgonMemory || time < 1 || time > maxArgonTime || threads < 1 || threads > maxArgonThreads {
		return h, fmt.Errorf("%w: parameters %q out of range", errMalformedHash, parts[3])
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return h, fmt.Errorf("%w: salt", errMalformedHash)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < minArgonKeyLen || len(key) > maxArgonKeyLen {
		return h, fmt.Errorf("%w: key", errMalformedHash)
	}
	return argonHash{memory: uint32(memory), time: uint32(time), threads: uint8(threads), salt: salt, key: key}, nil
}

// checkNewPassword says what is wrong with password as a new password, or returns nil.
func checkNewPassword(password string) error {
	switch n := len([]rune(password)); {
	case n < minPasswordLen:
		return fmt.Errorf("password too short: want at least %d characters, got %d", minPasswordLen, n)
	case len(password) > maxPasswordLen:
		return fmt.Errorf("password too long: want at most %d bytes, got %d", maxPasswordLen, len(password))
	}
	return nil
}

package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	zxcvbn "github.com/ccojocar/zxcvbn-go"
	"golang.org/x/crypto/argon2"
)

// Passwords are hashed with argon2id using the first configuration of the OWASP Password Storage
// Cheat Sheet: 19 MiB of memory, 2 passes, 1 lane. It costs about 40 ms of one core here, slow
// enough to make guessing expensive, fast enough for a login, and 19 MiB per login in flight
// (Accounts caps how many run at once). The parameters travel in each hash, so raising them later
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

// Password lengths. The minimum is a setting (Config.PasswordMinLength); these bound it and the
// longest password accepted. NIST SP 800-63B-4 asks that at least 64 characters be allowed: the
// setting may not go above MaxPasswordMinLength, and maxPasswordLen (bytes, to keep hashing time
// flat) is 64 characters of the widest UTF-8 and more.
const (
	MaxPasswordMinLength = 64
	maxPasswordLen       = 1024
)

// Guessability check of new passwords (zxcvbn). A password is refused when zxcvbn estimates
// fewer than 10^8 guesses for it (its score 3, "safely unguessable"): that catches the common
// passwords of its lists and the patterns built from them (repeats, sequences, keyboard walks,
// l33t), yet passes a phrase of a few unrelated words. Only the first zxcvbnMaxRunes go to
// zxcvbn, whose cost grows fast with length; more characters can only make a password stronger.
const (
	minPasswordScore = 3
	zxcvbnMaxRunes   = 100
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

// checkNewPassword is the one password policy, applied wherever a password is set (the user
// commands of the CLI today, any sign-up or change form tomorrow). It returns nil or an error
// that says what is wrong, for the person choosing the password. The policy is NIST SP
// 800-63B-4's: at least minLen characters (Unicode code points), at most maxPasswordLen bytes,
// no composition rules, and nothing common or easy to guess, the user's own email included.
func checkNewPassword(password, email string, minLen int) error {
	if !utf8.ValidString(password) {
		return errors.New("password is not valid UTF-8 text")
	}
	switch n := utf8.RuneCountInString(password); {
	case n < minLen:
		return fmt.Errorf("password too short: want at least %d characters, got %d", minLen, n)
	case len(password) > maxPasswordLen:
		return fmt.Errorf("password too long: want at most %d bytes, got %d", maxPasswordLen, len(password))
	}
	head := password
	if r := []rune(password); len(r) > zxcvbnMaxRunes {
		head = string(r[:zxcvbnMaxRunes])
	}
	inputs := []string{email}
	if local, _, ok := strings.Cut(email, "@"); ok {
		inputs = append(inputs, local)
	}
	if zxcvbn.PasswordStrength(head, inputs).Score < minPasswordScore {
		return errors.New("password too easy to guess: it is, or is built from, a common password, word, name, " +
			"repeat or sequence, or your email; a few unrelated words make a good one")
	}
	return nil
}

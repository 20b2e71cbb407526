package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/runes"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
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

var errMalformedHash = errors.New("malformed password hash")

// normalisePassword is the form in which a password is hashed, when it is set and at each login
// alike, so that one password is one password whatever the keyboard or system that typed it
// (composed or decomposed accents, full-width letters, a no-break space). It applies the steps
// of RFC 8265's OpaqueString profile (every space separator becomes U+0020, then Unicode
// normalisation) with NFKC for its NFC, as NIST SP 800-63B-4 asks. It never fails: what may
// be set is checkPasswordCharacters' business.
func normalisePassword(password string) string {
	return norm.NFKC.String(strings.Map(spaceToASCII, password))
}

func spaceToASCII(r rune) rune {
	if unicode.Is(unicode.Zs, r) {
		return ' '
	}
	return r
}

// passwordProfile is the PRECIS profile (RFC 8264) whose string class a new password must
// belong to: OpaqueString's FreeformClass, with normalisePassword's steps. It refuses control
// characters, invisible ones (default ignorable code points, such as zero-width spaces, and
// joiners out of their context), private-use and unassigned code points, and the empty string.
var passwordProfile = precis.NewFreeform(
	precis.AdditionalMapping(func() transform.Transformer { return runes.Map(spaceToASCII) }),
	precis.Norm(norm.NFKC),
	precis.DisallowEmpty,
)

// checkPasswordCharacters returns nil or an error naming the first character of password that
// no new password may contain (passwordProfile). Emoji stay typeable: a variation selector
// after a character and a zero-width joiner between two emoji, which emoji keyboards insert,
// are allowed though PRECIS refuses them.
func checkPasswordCharacters(password string) error {
	if !utf8.ValidString(password) {
		return errors.New("password is not valid UTF-8 text")
	}
	visible := withoutEmojiGlue(password)
	if _, err := passwordProfile.String(visible); err == nil {
		return nil
	}
	for _, r := range visible {
		if _, err := passwordProfile.String(string(r)); err != nil {
			return fmt.Errorf("password contains %U, which is not allowed: no control, invisible, private-use or unassigned characters", r)
		}
	}
	return errors.New("password contains a joining character where it is not allowed")
}

// withoutEmojiGlue returns s without the variation selectors that follow a character and the
// zero-width joiners that stand between two emoji.
func withoutEmojiGlue(s string) string {
	rs := []rune(s)
	out := rs[:0:0]
	for i, r := range rs {
		switch {
		case i > 0 && isVariationSelector(r):
			continue
		case r == '\u200d' && i > 0 && i+1 < len(rs) && isEmoji(lastVisible(rs[:i])) && isEmoji(rs[i+1]):
			continue
		}
		out = append(out, r)
	}
	return string(out)
}

func isVariationSelector(r rune) bool { return 0xfe00 <= r && r <= 0xfe0f }

// isEmoji reports whether r is a symbol that can join a zero-width-joiner emoji sequence: an
// other symbol (So, which holds the emoji) or a skin-tone modifier.
func isEmoji(r rune) bool { return unicode.Is(unicode.So, r) || 0x1f3fb <= r && r <= 0x1f3ff }

// lastVisible is the last rune of rs that is not a variation selector, or 0.
func lastVisible(rs []rune) rune {
	for i := len(rs) - 1; i >= 0; i-- {
		if !isVariationSelector(rs[i]) {
			return rs[i]
		}
	}
	return 0
}

// hashPassword returns password, normalised (normalisePassword), hashed with a fresh random
// salt, in the PHC string format ($argon2id$v=19$m=...,t=...,p=...$salt$key) that other argon2
// libraries read too.
func hashPassword(password string) string {
	salt := make([]byte, argonSaltLen)
	_, _ = rand.Read(salt) // never fails: crypto/rand.Read panics rather than return an error
	key := argon2.IDKey([]byte(normalisePassword(password)), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// checkPassword reports whether password matches encoded, a hash made by hashPassword (or
// before passwords were normalised: see verifyPassword). It returns an error, never a panic,
// when encoded is not such a hash.
func checkPassword(encoded, password string) (bool, error) {
	ok, _, err := verifyPassword(encoded, password)
	return ok, err
}

// verifyPassword is checkPassword that also reports legacy: the hash matched the password as
// typed but not its normal form, so it was made before passwords were normalised, and
// hashPassword(password) would store it in today's form. The password as typed is tried only
// when normalising changes it, which depends on the password alone, never on the hash: an
// unknown email's dummy hash costs what a real one does, for any password.
func verifyPassword(encoded, password string) (ok, legacy bool, err error) {
	p, err := parseHash(encoded)
	if err != nil {
		return false, false, err
	}
	normal := normalisePassword(password)
	if p.matches(normal) {
		return true, false, nil
	}
	if normal == password {
		return false, false, nil
	}
	ok = p.matches(password)
	return ok, ok, nil
}

// matches reports whether password hashes to h's key under h's salt and parameters.
func (h argonHash) matches(password string) bool {
	key := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key))) //nolint:gosec // parseHash bounds len(h.key) by maxArgonKeyLen
	return subtle.ConstantTimeCompare(key, h.key) == 1
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
// 800-63B-4's: only characters a person can see and type (checkPasswordCharacters), at least
// minLen characters (Unicode code points of the normal form, normalisePassword), at most
// maxPasswordLen bytes, no composition rules, and nothing common or easy to guess, the user's
// own email included, in any script (passwordGuesses).
//
// Its cost is bounded (passwordGuesses reads at most maxCheckedRunes characters), but it is
// still milliseconds of CPU: an HTTP endpoint that calls it must do so behind the login
// throttle and a hashing slot, as Accounts does for checkPassword.
func checkNewPassword(password, email string, minLen int) error {
	if err := checkPasswordCharacters(password); err != nil {
		return err
	}
	normal := normalisePassword(password)
	switch n := utf8.RuneCountInString(normal); {
	case n < minLen:
		return fmt.Errorf("password too short: want at least %d characters, got %d", minLen, n)
	case max(len(password), len(normal)) > maxPasswordLen:
		return fmt.Errorf("password too long: want at most %d bytes, got %d", maxPasswordLen, max(len(password), len(normal)))
	}
	if passwordGuesses(normal, email) < minPasswordGuesses {
		return errors.New("password too easy to guess: it is, or is built from, a common password, word, name, " +
			"repeat or sequence, or your email; a few unrelated words make a good one")
	}
	return nil
}

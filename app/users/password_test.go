package users

import (
	"strings"
	"testing"
)

func TestPasswordRoundTrip(t *testing.T) {
	t.Parallel()
	h := hashPassword("correct horse")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash: got %q, want the argon2id PHC form with the documented parameters", h)
	}
	if ok, err := checkPassword(h, "correct horse"); !ok || err != nil {
		t.Errorf("right password: got %v, %v, want true, nil", ok, err)
	}
	for _, wrong := range []string{"", "correct hors", "correct horse ", "Correct horse"} {
		if ok, err := checkPassword(h, wrong); ok || err != nil {
			t.Errorf("password %q: got %v, %v, want false, nil", wrong, ok, err)
		}
	}
	if h2 := hashPassword("correct horse"); h2 == h {
		t.Errorf("two hashes of one password are equal: the salt is not random")
	}
}

// The dummy hash checked for unknown emails must cost what a real one does.
func TestDummyHashUsesCurrentParameters(t *testing.T) {
	t.Parallel()
	got, err := parseHash(dummyHash())
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseHash(hashPassword("x"))
	if err != nil {
		t.Fatal(err)
	}
	if got.memory != want.memory || got.time != want.time || got.threads != want.threads || len(got.key) != len(want.key) {
		t.Errorf("dummy hash parameters: got %+v, want those of a new hash %+v", got, want)
	}
}

func TestCheckPasswordRejectsMalformedHashes(t *testing.T) {
	t.Parallel()
	good := hashPassword("pw")
	parts := strings.Split(good, "$")
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	tests := map[string]string{
		"empty":             "",
		"bcrypt":            "$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
		"argon2i":           with(1, "argon2i"),
		"other version":     with(2, "v=16"),
		"missing parameter": with(3, "m=19456,t=2"),
		"padded parameter":  with(3, "m=019456,t=2,p=1"),
		"huge memory":       with(3, "m=4294967295,t=2,p=1"),
		"huge time":         with(3, "m=19456,t=1000000,p=1"),
		"zero threads":      with(3, "m=19456,t=2,p=0"),
		"negative time":     with(3, "m=19456,t=-2,p=1"),
		"salt not base64":   with(4, "!!!!"),
		"short salt":        with(4, "AAAA"),
		"key not base64":    with(5, "%%%%"),
		"short key":         with(5, "AAAA"),
		"extra field":       good + "$x",
		"no leading dollar": strings.TrimPrefix(good, "$"),
	}
	for name, h := range tests {
		if ok, err := checkPassword(h, "pw"); ok || err == nil {
			t.Errorf("%s (%q): got %v, %v, want false and an error", name, h, ok, err)
		}
	}
}

func TestCheckNewPassword(t *testing.T) {
	t.Parallel()
	const minLen = 15 // the default PASSWORD_MIN_LENGTH
	// A strong phrase of n characters, to test lengths apart from guessability.
	phrase := func(n int) string {
		return strings.Repeat("quartz vivid ember lantern hollow ", 40)[:n]
	}
	tests := []struct {
		name, password string
		ok             bool
	}{
		{"empty", "", false},
		{"one under the minimum", phrase(minLen - 1), false},
		{"the minimum", phrase(minLen), true},
		{"64 characters, NIST's least maximum", phrase(64), true},
		{"multi-byte counts characters, not bytes", "ébène quartz vivid", true},
		{"15 bytes but 8 characters", "éééééééé", false},
		{"longest", phrase(maxPasswordLen), true},
		{"over the longest", phrase(maxPasswordLen + 1), false},
		{"not UTF-8", "quartz vivid \xff ember lantern", false},
		// Common and patterned passwords, whatever their length (the minimum is set low for
		// these so that only guessability refuses them).
		{"xkcd", "correct horse battery staple", true},
		{"no composition rules: all lower case, no digit", "lantern hollow quartz", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkNewPassword(tt.password, "ada@example.com", minLen); (err == nil) != tt.ok {
				t.Errorf("checkNewPassword(%.30q): got %v, want ok=%v", tt.password, err, tt.ok)
			}
		})
	}
	for _, weak := range []string{
		"password", "12345678", "passwordpassword", strings.Repeat(" ", 8), strings.Repeat(" ", 40),
		"iloveyouiloveyou", "qwertyuiopasdfghjkl", "abcdefghijklmnopq", "1234567890123456",
		"ada@example.com", "adaadaadaadaadaada",
	} {
		if err := checkNewPassword(weak, "ada@example.com", 8); err == nil || !strings.Contains(err.Error(), "easy to guess") {
			t.Errorf("checkNewPassword(%q) with a minimum of 8: got %v, want too easy to guess", weak, err)
		}
	}
}

// FuzzCheckPassword feeds arbitrary stored hashes to checkPassword: it must answer, never panic
// and never run away with memory or time (the parameter limits).
func FuzzCheckPassword(f *testing.F) {
	f.Add(hashPassword("pw"), "pw")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$$", "x")
	f.Add("$$$$$", "x")
	f.Fuzz(func(t *testing.T, encoded, password string) {
		ok, err := checkPassword(encoded, password)
		if ok && err != nil {
			t.Errorf("got ok with error %v", err)
		}
	})
}

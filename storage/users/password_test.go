package users

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
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

// Passwords that a person would call the same are the same: whatever the keyboard, the
// operating system or the form sent (composed or not, full-width, a no-break space).
func TestPasswordNormalised(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, set, login string }{
		{"NFC set, NFD login", "caf\u00e9 quartz vivid ember", "cafe\u0301 quartz vivid ember"},
		{"NFD set, NFC login", "cafe\u0301 quartz vivid ember", "caf\u00e9 quartz vivid ember"},
		{"full-width login", "quartz vivid ember", "\uff51\uff55\uff41\uff52\uff54\uff5a vivid ember"},
		{"no-break space login", "quartz vivid ember", "quartz\u00a0vivid\u2003ember"},
		{"Hangul jamo login", "\ud55c\uad6d quartz vivid", "\u1112\u1161\u11ab\u1100\u116e\u11a8 quartz vivid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, err := checkPassword(hashPassword(tt.set), tt.login); !ok || err != nil {
				t.Errorf("set %+q, login %+q: got %v, %v, want true, nil", tt.set, tt.login, ok, err)
			}
		})
	}
	// Normalising does not make different passwords equal.
	for _, login := range []string{"cafe quartz vivid ember", "CAF\u00c9 quartz vivid ember", "caf\u00e9 quartz  vivid ember"} {
		if ok, err := checkPassword(hashPassword("caf\u00e9 quartz vivid ember"), login); ok || err != nil {
			t.Errorf("login %+q: got %v, %v, want false, nil", login, ok, err)
		}
	}
}

// legacyHash is a hash as made before passwords were normalised: of the bytes as typed.
func legacyHash(t *testing.T, password string) string {
	t.Helper()
	salt := []byte("sixteen byte slt")
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// An account whose password was set before normalisation, in a form normalisation changes,
// still logs in with the password as it was set.
func TestPasswordLegacyHash(t *testing.T) {
	t.Parallel()
	const raw = "cafe\u0301\u00a0quartz vivid ember" // NFD and a no-break space: not its normal form
	if normalisePassword(raw) == raw {
		t.Fatalf("test password %+q is already normalised", raw)
	}
	h := legacyHash(t, raw)
	if ok, legacy, err := verifyPassword(h, raw); !ok || !legacy || err != nil {
		t.Errorf("legacy hash, same bytes: got %v, legacy %v, %v; want true, legacy, nil", ok, legacy, err)
	}
	if ok, err := checkPassword(h, "cafe quartz vivid ember"); ok || err != nil {
		t.Errorf("legacy hash, other password: got %v, %v; want false, nil", ok, err)
	}
	if ok, legacy, err := verifyPassword(hashPassword(raw), raw); !ok || legacy || err != nil {
		t.Errorf("new hash: got %v, legacy %v, %v; want true, not legacy, nil", ok, legacy, err)
	}
}

// The password policy judges what a person sees and types, in any script.
func TestCheckNewPasswordUnicode(t *testing.T) {
	t.Parallel()
	const minLen = 15
	tests := []struct {
		name, password string
		want           string // "" for accepted, else a part of the error
	}{
		// Repeats, sequences and words, whatever the script.
		{"é×15, composed", strings.Repeat("\u00e9", 15), "easy to guess"},
		{"é×15, decomposed", strings.Repeat("e\u0301", 15), "easy to guess"},
		{"😀×15", strings.Repeat("😀", 15), "easy to guess"},
		{"Cyrillic а×15", strings.Repeat("\u0430", 15), "easy to guess"},
		{"15 no-break spaces", strings.Repeat("\u00a0", 15), "easy to guess"},
		{"15 ideographic spaces", strings.Repeat("\u3000", 15), "easy to guess"},
		{"Cyrillic look-alikes of passwordpassword", "\u0440\u0430ssw\u043er\u0434\u0440\u0430ssw\u043erd", "easy to guess"},
		{"раsswоrdраsswоrd", "раsswоrdраsswоrd", "easy to guess"},
		{"Greek capitals of PASSWORDPASSWORD", "\u03a1\u0391SSW\u039fRD\u03a1\u0391SSW\u039fRD", "easy to guess"},
		{"full-width passwordpassword", "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44", "easy to guess"},
		{"mathematical bold passwordpassword", "𝐩𝐚𝐬𝐬𝐰𝐨𝐫𝐝𝐩𝐚𝐬𝐬𝐰𝐨𝐫𝐝", "easy to guess"},
		{"accented passwordpassword", "p\u00e4ssw\u00f6rdp\u00e4ssw\u00f6rd", "easy to guess"},
		{"two emoji repeated", strings.Repeat("😀🎉", 8), "easy to guess"},
		{"a word and a smiley, repeated", strings.Repeat("password😀", 2), "easy to guess"},
		{"Cyrillic alphabet", "абвгдежзийклмноп", "easy to guess"},
		{"hiragana in order", "ぁあぃいぅうぇえぉおかがきぎく", "easy to guess"},
		{"a Russian word thrice", "парольпарольпароль", "easy to guess"},
		{"multi-character ASCII repeat", "xqxqxqxqxqxqxqxq", "easy to guess"},
		// Characters nobody can see or type refuse the password at once.
		{"15 zero-width spaces", strings.Repeat("\u200b", 15), "not allowed"},
		{"zero-width space inside", "quartz vivid\u200b ember lantern", "not allowed"},
		{"NUL", "quartz vivid \x00ember lantern", "not allowed"},
		{"tab", "quartz vivid\tember lantern", "not allowed"},
		{"escape", "quartz vivid \x1b[0m ember lantern", "not allowed"},
		{"DEL", "quartz vivid \x7f ember lantern", "not allowed"},
		{"C1 control", "quartz vivid \u0085 ember lantern", "not allowed"},
		{"right-to-left override", "quartz vivid \u202e ember lantern", "not allowed"},
		{"byte order mark", "\ufeffquartz vivid ember lantern", "not allowed"},
		{"private use", "quartz vivid \ue000 ember lantern", "not allowed"},
		{"unassigned", "quartz vivid \U000e0fff ember lantern", "not allowed"},
		// Length counts the normal form's characters.
		{"21 code points, 14 once composed", strings.Repeat("e\u0301", 7) + "quartzv", "too short"},
		// Strong passwords in any script stay strong.
		{"Cyrillic phrase", "съешь мягких французских булок", ""},
		{"Greek phrase", "γαλάζιο φεγγάρι πάνω στη θάλασσα", ""},
		{"Chinese phrase", "紫色的猫在屋顶上唱歌一直到天亮", ""},
		{"Japanese phrase", "むらさきのねこがやねでうたうよ", ""},
		{"fifteen unrelated emoji", "🦊🌵🎻🚲🍋🧲🌋🪁🦉🧊🎲🪐🍄🛶🐙", ""},
		{"German phrase", "Grüße aus Köln, Straße neun", ""},
		{"accented phrase", "ébène quartz vivid lantern", ""},
		{"Devanagari with virama", "नमस्ते दुनिया बहुत सुंदर है", ""},
		{"emoji family sequence", "quartz vivid \U0001F468\u200d\U0001F469\u200d\U0001F467 ember", ""},
		{"emoji with a variation selector", "quartz vivid \u2764\ufe0f ember lantern", ""},
		{"joiner between letters", "quartz vivid a\u200db ember lantern", "not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkNewPassword(tt.password, "ada@example.com", minLen)
			if tt.want == "" && err != nil {
				t.Errorf("checkNewPassword(%+q): got %v, want nil", tt.password, err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("checkNewPassword(%+q): got %v, want an error saying %q", tt.password, err, tt.want)
			}
		})
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

// FuzzNormalisePassword: normalising is idempotent, is what the PRECIS profile computes for
// every password the policy lets through, and the policy answers any input without a panic.
func FuzzNormalisePassword(f *testing.F) {
	for _, s := range []string{"caf\u00e9", "cafe\u0301", "\u00a0\u3000", "\uff50\u0430ss", "😀\ufe0f\u200d🎉", "\x00\xff", "\u1100\u1161\u11a8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := normalisePassword(s)
		if again := normalisePassword(n); again != n {
			t.Errorf("normalisePassword(%+q) = %+q, and again %+q", s, n, again)
		}
		if p, err := passwordProfile.String(s); err == nil && p != n {
			t.Errorf("profile(%+q) = %+q, normalisePassword = %+q", s, p, n)
		}
		_ = checkNewPassword(s, "ada@example.com", 8)
	})
}

// Every entry of the look-alike table is what its comment says: a letter or number outside
// ASCII that NFKC leaves alone, listed once, for an ASCII letter or digit.
func TestConfusableTargets(t *testing.T) {
	t.Parallel()
	seen := map[rune]rune{}
	for target, lookalikes := range confusableTargets {
		if !('0' <= target && target <= '9' || 'a' <= target && target <= 'z' || 'A' <= target && target <= 'Z') {
			t.Errorf("target %q is not an ASCII letter or digit", target)
		}
		for _, r := range lookalikes {
			if r < 0x80 || !(unicode.IsLetter(r) || unicode.IsNumber(r)) || norm.NFKC.String(string(r)) != string(r) {
				t.Errorf("%U (for %q): want a letter or number outside ASCII that NFKC leaves alone", r, target)
			}
			if other, ok := seen[r]; ok {
				t.Errorf("%U is listed for %q and %q", r, other, target)
			}
			seen[r] = target
		}
	}
	for r, want := range map[rune]rune{'\u0430': 'a', '\u0440': 'p', '\u043e': 'o', '\u0455': 's', '\u03bf': 'o', '\u0391': 'A', '\u0406': 'I', '\u0251': 'a'} {
		if got := confusables()[r]; got != want {
			t.Errorf("confusables()[%U]: got %q, want %q", r, got, want)
		}
	}
}

// BenchmarkCheckNewPassword measures the policy on passwords of maxCheckedRunes characters and
// more: a phrase, a repeat, emoji and the worst shape found for the repeat search.
func BenchmarkCheckNewPassword(b *testing.B) {
	fib := "a"
	for prev := "b"; len(fib) < 200; fib, prev = fib+prev, fib {
	}
	for _, bm := range []struct{ name, password string }{
		{"phrase100", strings.Repeat("quartz vivid ember lantern hollow ", 3)[:100]},
		{"phrase1024", strings.Repeat("quartz vivid ember lantern hollow ", 40)[:1024]},
		{"repeat100", strings.Repeat("xq", 50)},
		{"emoji100", strings.Repeat("🦊🌵🎻🚲🍋🧲🌋🪁🦉🧊", 10)},
		{"cyrillic100", string([]rune(strings.Repeat("съешь мягких французских булок ", 4))[:100])},
		{"fibonacci200", fib[:200]},
		{"digits100", "7624210089989549405892098111376355267130657587507393141047172602422956569094964947015874024303469160"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = checkNewPassword(bm.password, "ada@example.com", 15)
			}
		})
	}
}

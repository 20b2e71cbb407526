package users

import (
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ccojocar/zxcvbn-go/matching"
	"golang.org/x/text/unicode/norm"
)

// Guessability of new passwords. A password is refused when it takes fewer than
// minPasswordGuesses guesses by the estimate of passwordGuesses: zxcvbn's score 3 ("safely
// unguessable", 10^6 s at its 10^4 guesses a second, halved), which catches the common passwords
// of its lists and the patterns built from them (repeats, sequences, keyboard walks, l33t) yet
// passes a phrase of a few unrelated words. Only the first maxCheckedRunes characters are
// judged, NIST SP 800-63B-4's least maximum: the estimate's cost grows with the cube of the
// length (zxcvbn's date matching of a run of digits is the worst case: about 18 ms of CPU at 64,
// 95 ms at 100; BenchmarkCheckNewPassword), and more characters can only make a password
// stronger.
const (
	minPasswordGuesses = 2e10
	maxCheckedRunes    = 64
)

// passwordGuesses estimates how many guesses an attacker who knows email needs to find the
// password whose normal form (normalisePassword) is normal. It judges what a person sees:
// the password's skeleton (passwordSkeleton), so that look-alikes of a word are that word. It
// takes the cheapest way to build the skeleton from pieces, as zxcvbn does: zxcvbn's matches
// (dictionary words and names, the email, keyboard walks, dates, l33t) in runs of ASCII, and in
// any script runs of one repeated unit (😀😀😀, парольпароль) and sequences of code points
// (абвгд, 9876), each other character costing what guessing it alone would.
func passwordGuesses(normal, email string) float64 {
	s, plain := passwordSkeleton(normal)
	if len(s) > maxCheckedRunes {
		s, plain = s[:maxCheckedRunes], plain[:maxCheckedRunes]
	}
	e := estimator{s: s, plain: plain, ends: make([][]span, len(s)+1), units: map[[2]int]float64{}}
	inputs := []string{email}
	if local, _, ok := strings.Cut(email, "@"); ok {
		inputs = append(inputs, local)
	}
	e.addASCIIMatches(inputs)
	return e.guesses(0, len(s))
}

// passwordSkeleton is normal as a person reads it: without accents and other combining marks,
// invisible characters or case, with look-alikes of Latin letters and digits (confusables) read
// as those. plain is the same characters before the look-alikes are read as Latin, one for one,
// for the sequences of a script (абвгд).
func passwordSkeleton(normal string) (s, plain []rune) {
	bare := norm.NFC.String(strings.Map(func(r rune) rune {
		if unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) {
			return -1
		}
		return r
	}, norm.NFD.String(normal)))
	look := confusables()
	n := utf8.RuneCountInString(bare)
	s, plain = make([]rune, 0, n), make([]rune, 0, n)
	for _, r := range bare {
		plain = append(plain, unicode.ToLower(r))
		if t, ok := look[r]; ok {
			r = t
		}
		s = append(s, unicode.ToLower(r))
	}
	return s, plain
}

// span is a piece of the skeleton that an attacker guesses as one: it starts at rune start and
// costs guesses.
type span struct {
	start   int
	guesses float64
}

// estimator finds the cheapest cover of a skeleton by pieces. plain is the skeleton before
// look-alikes were read as Latin (passwordSkeleton); ends[i] holds zxcvbn's matches that end
// before rune i; units memoises the estimate of a repeated unit by its position.
type estimator struct {
	s, plain []rune
	ends     [][]span
	units    map[[2]int]float64
}

// addASCIIMatches adds zxcvbn's matches in each run of ASCII characters of the skeleton. zxcvbn
// counts bytes and its dictionaries are ASCII; the rest of the skeleton is left to guesses.
func (e *estimator) addASCIIMatches(inputs []string) {
	for lo := 0; lo < len(e.s); {
		if e.s[lo] >= utf8.RuneSelf {
			lo++
			continue
		}
		hi := lo
		for hi < len(e.s) && e.s[hi] < utf8.RuneSelf {
			hi++
		}
		for _, m := range matching.Omnimatch(string(e.s[lo:hi]), inputs) {
			if m.I < 0 || m.J < m.I || lo+m.J >= hi {
				continue
			}
			e.ends[lo+m.J+1] = append(e.ends[lo+m.J+1], span{lo + m.I, math.Exp2(m.Entropy)})
		}
		lo = hi
	}
}

// guesses is the estimate for the skeleton's runes lo to hi: the product of the pieces of its
// cheapest cover.
func (e *estimator) guesses(lo, hi int) float64 {
	best := make([]float64, hi-lo+1)
	best[0] = 1
	for end := lo + 1; end <= hi; end++ {
		b := best[end-1-lo] * cardinality(e.s[end-1])
		for _, m := range e.ends[end] {
			if m.start >= lo {
				b = min(b, best[m.start-lo]*m.guesses)
			}
		}
		// A sequence: three or more code points a constant step of 1 to 5 apart, in the
		// skeleton or in its script.
		for _, s := range [][]rune{e.s, e.plain} {
			if end-lo < 3 {
				break
			}
			if d := s[end-1] - s[end-2]; d != 0 && -5 <= d && d <= 5 {
				for start := end - 2; start >= lo && s[start+1]-s[start] == d; start-- {
					if n := end - start; n >= 3 {
						b = min(b, best[start-lo]*sequenceGuesses(s[start], d, n))
					}
				}
			}
		}
		// A repeat: two or more copies of a unit that is not itself a repeat.
		for n := 1; 2*n <= end-lo; n++ {
			copies := 1
			for start := end - 2*n; start >= lo && equalRunes(e.s[start:start+n], e.s[end-n:end]); start -= n {
				copies++
			}
			if copies < 2 || !primitive(e.s[end-n:end]) {
				continue
			}
			unit := e.unit(end-n, end)
			for c := 2; c <= copies; c++ {
				b = min(b, best[end-c*n-lo]*unit*float64(c))
			}
		}
		best[end-lo] = b
	}
	return best[hi-lo]
}

// unit is the memoised estimate of the repeated unit at runes lo to hi.
func (e *estimator) unit(lo, hi int) float64 {
	k := [2]int{lo, hi}
	if g, ok := e.units[k]; ok {
		return g
	}
	g := e.guesses(lo, hi)
	e.units[k] = g
	return g
}

// cardinality is what guessing one character of the skeleton alone costs: the size of its
// class, as zxcvbn counts them (a letter of any script as one of 26).
func cardinality(r rune) float64 {
	switch {
	case unicode.IsDigit(r):
		return 10
	case unicode.IsLetter(r):
		return 26
	default:
		return 33
	}
}

// sequenceGuesses is zxcvbn's estimate of a sequence of n code points step d apart from first:
// a few guesses for the obvious starts, the class for the others, twice for a descending one.
func sequenceGuesses(first, d rune, n int) float64 {
	base := cardinality(first)
	if strings.ContainsRune("az019", first) {
		base = 4
	}
	if d < 0 {
		base *= 2
	}
	return base * float64(n)
}

func equalRunes(a, b []rune) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// primitive reports whether u is not a repeat of a shorter unit.
func primitive(u []rune) bool {
	for n := 1; n <= len(u)/2; n++ {
		if len(u)%n == 0 && equalRunes(u[n:], u[:len(u)-n]) {
			return false
		}
	}
	return true
}

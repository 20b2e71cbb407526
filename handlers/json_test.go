package handlers_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/handlers"
)

type decodeTarget struct {
	Name  string            `json:"name"`
	Count int               `json:"count"`
	Tags  []string          `json:"tags"`
	Inner *struct{ A bool } `json:"inner"`
	Attrs map[string]any    `json:"attrs"`
	Skip  string            `json:"-"`
}

// decodeApp answers with the decoded target as JSON, or with DecodeJSON's error.
func decodeApp(limit int) *fiber.App {
	app := fiber.New()
	app.Post("/", func(c *fiber.Ctx) error {
		var v decodeTarget
		if err := handlers.DecodeJSON(c, &v, limit); err != nil {
			return err
		}
		return c.JSON(v)
	})
	return app
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	app := decodeApp(256)
	tests := []struct {
		name, contentType, body string
		want                    int
		wantBody                string // for 200
	}{
		{"all fields", "application/json", `{"name":"a","count":2,"tags":["x"],"inner":{"A":true},"attrs":{"K":[1,{"z":null}]}}`, 200,
			`{"name":"a","count":2,"tags":["x"],"inner":{"A":true},"attrs":{"K":[1,{"z":null}]}}`},
		{"charset parameter", "application/json; charset=utf-8", `{"name":"a"}`, 200,
			`{"name":"a","count":0,"tags":null,"inner":null,"attrs":null}`},
		{"whitespace around", "application/json", " \n{\"name\":\"a\"}\n ", 200,
			`{"name":"a","count":0,"tags":null,"inner":null,"attrs":null}`},
		{"field name in other case", "application/json", `{"NAME":"a"}`, 400, ""},
		{"Go field name where a tag renames it", "application/json", `{"Count":1}`, 400, ""},
		{"nested field name in other case", "application/json", `{"inner":{"a":true}}`, 400, ""},
		{"unknown field", "application/json", `{"name":"a","admin":true}`, 400, ""},
		{"ignored field", "application/json", `{"Skip":"x"}`, 400, ""},
		{"repeated field", "application/json", `{"name":"a","name":"b"}`, 400, ""},
		{"trailing value", "application/json", `{"name":"a"}{}`, 400, ""},
		{"trailing garbage", "application/json", `{"name":"a"} x`, 400, ""},
		{"malformed", "application/json", `{"name":`, 400, ""},
		{"empty", "application/json", ``, 400, ""},
		{"not an object", "application/json", `"a"`, 400, ""},
		{"wrong type", "application/json", `{"count":"2"}`, 400, ""},
		{"number too large", "application/json", `{"count":1e400}`, 400, ""},
		{"NUL in a value", "application/json", `{"name":"a\u0000b"}`, 400, ""},
		{"NUL in a key", "application/json", `{"attrs":{"\u0000":1}}`, 400, ""},
		{"NUL deep inside", "application/json", `{"attrs":{"k":[["\u0000"]]}}`, 400, ""},
		{"too deep", "application/json", `{"attrs":{"k":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`, 400, ""},
		{"over the limit", "application/json", `{"name":"` + strings.Repeat("x", 256) + `"}`, 413, ""},
		{"text/plain", "text/plain", `{"name":"a"}`, 415, ""},
		{"form", "application/x-www-form-urlencoded", `name=a`, 415, ""},
		{"no content type", "", `{"name":"a"}`, 415, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, body := send(t, app, "POST", "/", tt.contentType, tt.body)
			if status != tt.want || (tt.want == 200 && body != tt.wantBody) {
				t.Errorf("got %d %s, want %d %s", status, body, tt.want, tt.wantBody)
			}
		})
	}
}

func TestDecodeJSONRefusesCompressedBodies(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest("POST", "/", strings.NewReader(`{"name":"a"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := decodeApp(256).Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != fiber.StatusUnsupportedMediaType {
		t.Errorf("got %d, want 415", resp.StatusCode)
	}
}

// Login goes through DecodeJSON: a body that encoding/json alone would accept, with field names
// in other cases, never reaches the gate.
func TestLoginFieldNamesExact(t *testing.T) {
	t.Parallel()
	gate, sessions := &fakeGate{}, &fakeSessions{}
	for _, body := range []string{
		`{"EMAIL": "ada@example.com", "PassWord": "right"}`,
		`{"email": "ada@example.com", "password": "right", "remember": true}`,
		`{"email": "ada@example.com", "password": "wrong", "password": "right"}`,
		`{"email": "ada@example.com\u0000", "password": "right"}`,
	} {
		if status, resp := send(t, newApp(gate, sessions), "POST", "/login", "application/json", body); status != 400 {
			t.Errorf("login with %s: got %d %s, want 400", body, status, resp)
		}
	}
	if gate.calls != 0 || len(sessions.started) != 0 {
		t.Errorf("got %d Check calls and %d sessions, want none", gate.calls, len(sessions.started))
	}
}

package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// maxJSONDepth bounds the nesting of a request body: no request of ours nests deeper, and the
// check walks the body recursively.
const maxJSONDepth = 32

var (
	errNotJSON   = fiber.NewError(fiber.StatusUnsupportedMediaType, "send Content-Type: application/json")
	errEncoded   = fiber.NewError(fiber.StatusUnsupportedMediaType, "send the body without Content-Encoding")
	errTrailing  = fiber.NewError(fiber.StatusBadRequest, "body must hold one JSON value and nothing after it")
	errTooDeep   = fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf("body nests deeper than %d levels", maxJSONDepth))
	errNULInBody = fiber.NewError(fiber.StatusBadRequest, "body must not contain NUL characters (\\u0000)")
)

// DecodeJSON decodes the request body into v, a pointer to a struct, strictly. It returns a
// *fiber.Error, so a handler returns it as it is:
//
//   - 415 unless the Content-Type is application/json (parameters such as charset allowed) and
//     the body is not compressed (no Content-Encoding);
//   - 413 when the body is over limit bytes, before reading it;
//   - 400 when the body is not exactly one JSON value of v's shape: malformed JSON, trailing
//     data, an object key that is not one of v's field names spelt exactly (encoding/json alone
//     would take "EMAIL" for "email"), an unknown or repeated key, a value of the wrong type,
//     nesting over 32 levels, or a string holding a NUL character, which PostgreSQL text cannot
//     store.
//
// Fields missing from the body keep their value: checking required fields is the caller's job.
// Requiring the JSON content type also keeps other sites from sending the body with a plain
// HTML form: a cross-site fetch that sets it needs a CORS preflight, which this server never
// grants.
func DecodeJSON(c *fiber.Ctx, v any, limit int) error {
	if !c.Is("json") {
		return errNotJSON
	}
	if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && !strings.EqualFold(enc, "identity") {
		return errEncoded
	}
	// The raw body: c.Body would inflate a compressed one first, without a size limit.
	body := c.Request().Body()
	if len(body) > limit {
		return fiber.NewError(fiber.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", limit))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := checkJSON(dec, reflect.TypeOf(v), 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailing
	}
	// The walk proved the keys exact and known; this fills v and checks the types.
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf("field %q must be a JSON %s", te.Field, jsonKind(te.Type)))
		}
		return fiber.NewError(fiber.StatusBadRequest, "body must be a JSON object")
	}
	return nil
}

// checkJSON reads the next value from dec and checks it against t (nil: any shape): objects
// decoded into a struct may hold only its fields' exact names, each once. It fails on
// malformed JSON, on nesting deeper than maxJSONDepth, and on NUL characters in any string.
func checkJSON(dec *json.Decoder, t reflect.Type, depth int) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "body is not valid JSON")
	}
	switch tok := tok.(type) {
	case string:
		if strings.IndexByte(tok, 0) >= 0 {
			return errNULInBody
		}
		return nil
	case json.Delim:
		if depth == maxJSONDepth {
			return errTooDeep
		}
		if tok == '[' {
			var elem reflect.Type
			if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
				elem = t.Elem()
			}
			for dec.More() {
				if err := checkJSON(dec, elem, depth+1); err != nil {
					return err
				}
			}
		} else {
			if err := checkObject(dec, t, depth); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return fiber.NewError(fiber.StatusBadRequest, "body is not valid JSON")
		}
	}
	return nil
}

// checkObject checks the members of an object whose '{' dec has just read, up to its '}'.
func checkObject(dec *json.Decoder, t reflect.Type, depth int) error {
	var fields map[string]reflect.Type
	if t != nil && t.Kind() == reflect.Struct {
		fields = jsonFields(t)
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fiber.NewError(fiber.StatusBadRequest, "body is not valid JSON")
		}
		key, _ := tok.(string)
		if strings.IndexByte(key, 0) >= 0 {
			return errNULInBody
		}
		if seen[key] {
			return fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf("field %q appears twice", key))
		}
		seen[key] = true
		var elem reflect.Type
		switch {
		case fields != nil:
			ft, ok := fields[key]
			if !ok {
				return fiber.NewError(fiber.StatusBadRequest, fmt.Sprintf("unknown field %q", key))
			}
			elem = ft
		case t != nil && t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		if err := checkJSON(dec, elem, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// jsonFields returns the JSON names of struct type t's fields, as encoding/json names them
// (the tag's name, else the Go name), with their types. Fields of embedded structs without a
// tag are promoted, as encoding/json promotes them.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type)
	for _, f := range reflect.VisibleFields(t) {
		if f.Anonymous || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && f.Tag.Get("json") == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// jsonKind names the JSON type that decodes into t, for error messages.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	default:
		return "number"
	}
}

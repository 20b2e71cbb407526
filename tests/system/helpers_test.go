// Package system holds the tests that need more than Go and PostgreSQL (Docker, a browser), such
// as those of the container files (deploy_test.go). It is a module of its own
// (tests/system/go.mod) so that what they need stays out of the template's go.mod; `task
// test:all` runs it after the main module's tests.
package system

// root is the template's root folder, seen from this module.
const root = "../.."

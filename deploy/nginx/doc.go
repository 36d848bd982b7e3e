// Package nginx holds the nginx recipe that puts a shop and sluice behind
// one front door (sluice.conf) and the test that runs it in a real nginx.
// It has no code of its own.
package nginx

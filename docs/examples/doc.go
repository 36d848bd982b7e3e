// Package examples holds the example pages of docs/ (shop.html: a shop's
// product page calling sluice across origins) and the tests that run them
// in headless Chromium against real gates. It has no code of its own.
package examples

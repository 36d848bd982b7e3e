// Package deploy holds what runs sluice on real machines: the image
// (Containerfile, build-image.sh), the systemd unit (systemd/), the
// Kubernetes manifests (kubernetes/) and the three-gate cluster recipe
// (cluster/), with the tests that build, verify and run them. It has no
// code of its own; docs/deploying.md is their guide.
package deploy

# METADATA
# description: |
#   pinDigests: which images the mutating side turns from `repo:tag` into
#   `repo:tag@sha256:…` (the digest the tag names now; for a multi-arch image, the
#   index's). "pods" pins Pods only, so GitOps tools see their templates as written;
#   "all" also templates nobody controls. A controller's template is never changed (its
#   pods are pinned when they are created), and an ImageReview cannot be mutated.
package imagegate.lib.pinning

import data.imagegate.lib.images
import data.imagegate.settings

# METADATA
# description: pinDigests pins this object's images (those without a digest yet).
# scope: document
active if {
	settings.config.pinDigests in {"pods", "all"}
	input.protocol == "admission"
	images.pod
}

active if {
	settings.config.pinDigests == "all"
	input.protocol == "admission"
	images.workload
	not images.pod
	not images.controlled
}

# METADATA
# description: |
#   The pods this object's images end up in are pinned: a template's pods are Pods, pinned
#   when they are created, whatever pinDigests says of templates.
pods_pinned if settings.config.pinDigests in {"pods", "all"}

# METADATA
# description: |
#   The digest the registry named for the image's tag, from the facts the gateway
#   gathered (`input.images[i].facts`); undefined when there is none.
digest(image) := image.facts.digest if {
	is_string(image.facts.digest)
	[algorithm, hex_digits] := split(image.facts.digest, ":")
	_hex_length[algorithm] == count(hex_digits)

	# Lower-case hex only. (No regex: the wasm compiles one at every evaluation.)
	trim(hex_digits, "0123456789abcdef") == ""
}

_hex_length := {"sha256": 64, "sha512": 128}

# METADATA
# description: Why the facts have no digest (the gateway's error, or that none were gathered).
missing(image) := image.facts.error if {
	is_string(image.facts.error)
	image.facts.error != ""
} else := "the gateway gathered no registry facts for it"

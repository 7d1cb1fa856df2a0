# METADATA
# description: |
#   The registry facts a decision needs, asked before it is evaluated (the evaluation is
#   synchronous and must not wait on a network): for the mutating decision the digest of
#   each tag pinDigests pins, for the validating one a signature check where a
#   `signatures` entry covers the image pulled (and the digest of a tag that should have
#   been pinned, for the reason). The gateway gathers them within the review's budget
#   and puts them in `input.images[i].facts`; images nothing asks about cost no registry
#   call, and neither do hosts the configuration does not name (the gateway refuses those).
package imagegate.facts

import data.imagegate.mutate
import data.imagegate.settings
import data.imagegate.validate

# METADATA
# title: Facts needed
# entrypoint: true
needed := {
	"mutate": _for("mutate"),
	"validate": _for("validate"),
	"maxLookups": settings.config.maxLookups,
}

# METADATA
# title: Decision with the facts it needs
# description: |
#   The decision `input.factsFor` names and, from the same evaluation, the lookups it
#   needs. The gateway evaluates this with the facts it expects the review to need already
#   on the images; when the lookups it gets back are exactly those, the decision stands
#   and the review cost one evaluation. The lookups never depend on the facts given.
# entrypoint: true
decided := {
	"decision": validate.decision,
	"lookups": _for("validate"),
	"maxLookups": settings.config.maxLookups,
} if {
	input.factsFor == "validate"
} else := {
	"decision": mutate.decision,
	"lookups": _for("mutate"),
	"maxLookups": settings.config.maxLookups,
} if {
	input.factsFor == "mutate"
}

# `input.factsFor` names the one decision the gateway is about to make: the other's
# lookups are not computed (a review is mutated or validated, never both at once).
_for(decision) := [] if {
	is_string(input.factsFor)
	input.factsFor != decision
} else := [_request(lookup) | some lookup in mutate.lookups] if {
	decision == "mutate"
} else := [_request(lookup) | some lookup in validate.lookups]

_request(lookup) := {
	"index": lookup.index,
	"registry": lookup.reference.domain,
	"repository": lookup.reference.path,
	"tag": lookup.reference.tag,
	"digest": lookup.reference.digest,
	"verification": lookup.verification,
}

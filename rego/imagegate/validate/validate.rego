# METADATA
# description: |
#   The validating decision (docs/policy-input.md): one violation per image and rule,
#   turned into a denial, warnings or audit-only records by the namespace's enforcement
#   and break-glass.
package imagegate.validate

import data.imagegate.lib.exemptions
import data.imagegate.lib.images
import data.imagegate.lib.pinning
import data.imagegate.lib.rewrite
import data.imagegate.lib.signatures
import data.imagegate.lib.sources
import data.imagegate.settings

# Violation rules, in the order they are reported for each image.
rules := [
	"invalid-reference", "trusted-registry", "latest-tag", "disallowed-tag",
	"require-digest", "pin-digest", "signature", "attestation", "pull-policy",
]

break_glass_annotation := "break-glass.image-policy.k8s.io/reason"

# METADATA
# title: Validating decision
# entrypoint: true
decision := {
	"allowed": allowed,
	"enforcement": settings.config.enforcement,
	"exempt": settings.excluded,
	"breakGlass": break_glass,
	"violations": violations,
	"reasons": reasons,
	"warnings": warnings,
	"auditAnnotations": audit_annotations,
}

# METADATA
# description: |
#   Violations of the object as a whole, then per image in image order and rule order;
#   none in an excluded namespace.
violations := array.concat(object_violations, image_violations)

image_violations := [violation |
	not settings.excluded
	some image in images.checked
	not exemptions.exempt(image)
	some rule in rules
	message := problem(image, rule)
	violation := {
		"rule": rule,
		"image": images.text(image, "raw"),
		"container": images.text(image, "container"),
		"path": images.text(image, "path"),
		"message": concat("", [images.describe(image), message]),
	}
]

# METADATA
# description: |
#   maxImages as a namespace's policy. The gateway refuses a review over the top-level
#   value before evaluating it; an override lowers the bound for its namespaces.
object_violations := [violation |
	not settings.excluded
	images.reviewed
	total := count(images.every_image)
	total > settings.config.maxImages
	violation := {
		"rule": "max-images",
		"image": "",
		"container": "",
		"path": "",
		"message": concat("", [
			"the object has ", format_int(total, 10), " images; at most ",
			format_int(settings.config.maxImages, 10), " are allowed here (maxImages)",
		]),
	}
]

# METADATA
# description: |
#   The messages an answer carries: every violation's, up to max_shown, then how many more
#   there are. kube-apiserver shows a few KiB of them at most and the gateway cuts each
#   text at 16 KiB; a review with tens of thousands of violations would otherwise build
#   megabytes of strings here (three times: reasons, warnings, the audit annotation) and
#   run the policy out of memory. `violations` stays complete (the audit reports each).
messages := array.concat(
	[violation.message | some violation in array.slice(violations, 0, max_shown)],
	_more(count(violations) - max_shown),
)

max_shown := 512

_more(n) := [concat("", ["… and ", format_int(n, 10), " more violations"])] if n > 0

_more(n) := [] if n <= 0

# METADATA
# description: |
#   What the violations do: "pass" (there are none), "break-glass" (denials waived),
#   or the enforcement mode ("deny", "warn", "dryrun").
outcome := "pass" if {
	count(violations) == 0
} else := "break-glass" if {
	settings.config.enforcement == "deny"
	break_glass_granted
} else := settings.config.enforcement

default allowed := false

allowed if outcome != "deny"

default break_glass := false

break_glass if outcome == "break-glass"

default reasons := []

reasons := messages if outcome == "deny"

default warnings := []

warnings := messages if outcome in {"warn", "break-glass"}

# METADATA
# scope: document
# description: |
#   Audit annotations: empty without violations; otherwise the joined messages, plus the
#   dryrun mode, the break-glass reason, or a note that break-glass was asked for while
#   disabled. Break-glass is audited whenever it was used, in every enforcement mode.
audit_annotations["violations"] := concat("; ", messages) if outcome != "pass"

audit_annotations["enforcement"] := "dryrun" if outcome == "dryrun"

# Exemptions are audited whenever they are used, violations or not.
audit_annotations["exempt-images"] := concat(", ", exemptions.exempted) if {
	not settings.excluded
	count(exemptions.exempted) > 0
}

audit_annotations["verified-signatures"] := concat(", ", verified) if count(verified) > 0

audit_annotations["break-glass"] := break_glass_reason if {
	outcome != "pass"
	break_glass_granted
}

audit_annotations["break-glass-ignored"] := "true" if {
	outcome != "pass"
	break_glass_reason
	not settings.config.breakGlass
}

# METADATA
# description: The break-glass annotation's reason, when it says anything.
break_glass_reason := reason if {
	reason := input.annotations[break_glass_annotation]
	is_string(reason)
	trim_space(reason) != ""
}

break_glass_granted if {
	settings.config.breakGlass
	break_glass_reason
}

# METADATA
# scope: document
# description: The message for one rule the image breaks (after the image's description).
problem(image, "invalid-reference") := concat("", ["invalid image reference: ", _error(image)]) if {
	not images.valid(image)
}

problem(image, "trusted-registry") := concat("", [
	"registry ", reference.domain, "/", reference.path,
	" is not trusted (trusted: ", _trusted, ")",
]) if {
	images.valid(image)
	reference := pulled_reference(image)
	not sources.matches_any_parsed(_trusted_sources, reference)
}

problem(image, "latest-tag") := _latest_message(image.reference.tag) if {
	settings.config.denyLatest
	images.valid(image)
	image.reference.digest == ""
	lower(image.reference.tag) in {"", "latest"}
}

# Tags compare without case: `LATEST` is as mutable as `latest`. A digest pins the image
# whatever its tag says, as for latest.
problem(image, "disallowed-tag") := concat("", [
	"tag \"", image.reference.tag, "\" is not allowed (disallowedTags); pin a version tag or a digest",
]) if {
	images.valid(image)
	image.reference.digest == ""
	tag := lower(image.reference.tag)
	tag in _disallowed_tags
	not _latest_covers(tag)
}

# Checked after mutation: a Pod arrives pinned when pinDigests pins it, and a template
# whose pods pinDigests pins is judged as its pods will be (so "pods" mode keeps GitOps
# templates as written and still runs nothing by mutable tag).
problem(image, "require-digest") := concat("", [
	"no digest; images here must be pinned by digest (requireDigest)", _pin_failure(image, _pinning),
]) if {
	_digest_required
	images.valid(image)
	pulled_reference(image).digest == ""
	not _unchecked(image)
}

# pinDigests alone: the mutating side pins; an image it should have pinned and did not
# (the registry failed, or the mutating webhook is not registered) is not let through.
problem(image, "pin-digest") := concat("", ["not pinned to a digest (pinDigests)", _pin_failure(image, true)]) if {
	_pin_checked
	images.valid(image)
	pulled_reference(image).digest == ""
	not _unchecked(image)
}

# signatures: the covering entry's signers (its keys or keyless identities, as many as its
# threshold) must have signed the digest pulled, with the evidence it requires.
problem(image, "signature") := concat("", [
	"signature required (", required.scope, "): ", _unsigned_reason(image),
]) if {
	images.valid(image)
	not _verified(image)
	not _unchecked(image)
	required := _signature_required(image)
}

# attestations: each type the covering entry requires, verified like its signature and
# about the digest pulled. Judged once the signature is (else that violation says why).
problem(image, "attestation") := concat("", [
	"attestation required (", required.scope, "): ", concat("; ", missing),
]) if {
	images.valid(image)
	_verified(image)
	required := _signature_required(image)
	missing := [concat("", [a.type, ": ", _attestation_reason(image, a.type)]) |
		some a in required.attestations
		a.required
		not _attested(image, a.type)
	]
	count(missing) > 0
}

problem(image, "pull-policy") := concat("", [
	"imagePullPolicy is ", _pull_policy(images.text(image, "pullPolicy")),
	", must be \"", _required_pull_policy, "\"",
]) if {
	images.is_new(image)
	images.text(image, "pullPolicy") != _required_pull_policy
}

_digest_required if {
	settings.config.requireDigest
	not _template_pods_pinned
}

_pin_checked if {
	not settings.config.requireDigest
	pinning.active
}

# AlwaysPullImages semantics, for Pods and for every template nobody controls: a Deployment
# that says IfNotPresent is refused when it is applied, as an untrusted registry is, not
# when its pods fail later (with the mutating webhook in front it says Always by then). A
# template its controller owns is never mutated and is judged as its pods will be: the
# pods are checked, so it is not. An ImageReview has no pull policy.
_required_pull_policy := settings.config.pullPolicy if {
	settings.config.pullPolicy != null
	not images.imagereview
	not images.controlled
}

# METADATA
# description: |
#   The reference the kubelet will pull. The mutating webhook has already rewritten every
#   image it may rewrite before this webhook sees it, except in a template a controller
#   owns (which is left alone, images.controlled): there it is the reference the pods
#   will carry once their own creation is mutated.
pulled_reference(image) := rewrite.target(image.reference) if {
	images.controlled
} else := image.reference

_template_pods_pinned if {
	images.workload
	not images.pod
	pinning.pods_pinned
}

default _pinning := false

_pinning if pinning.active

_pin_failure(_, false) := ""

_pin_failure(image, true) := concat("", [
	"; the tag names ", pinning.digest(image), " but the mutating webhook did not pin it",
]) if {
	pinning.digest(image)
} else := concat("", ["; pinning failed: ", pinning.missing(image)])

# `imagegate check --offline` asked no registry: what needs facts goes unjudged there,
# and check lists it as unverified. The gateway never marks an image so.
_unchecked(image) if is_string(image.facts.unverified)

_verified(image) if {
	image.facts.signature.verified == true
	count(_signers(image)) > 0
	_facts_for(image)
}

_signers(image) := [signer | some signer in image.facts.signature.signers; is_string(signer)]

_attested(image, type) if {
	some attestation in image.facts.attestations
	attestation.type == type
}

_attestation_reason(image, type) := reason if {
	reason := image.facts.attestationFailures[type].reason
	is_string(reason)
} else := "no attestation"

# The facts are of the digest pulled: the reference's own, or the one its tag names now.
_facts_for(image) if pulled_reference(image).digest == ""

_facts_for(image) if image.facts.digest == pulled_reference(image).digest

_unsigned_reason(image) := image.facts.signature.reason if {
	image.facts.signature.verified == false
	is_string(image.facts.signature.reason)
} else := concat("", ["the facts are of ", image.facts.digest, ", not of the digest pulled"]) if {
	image.facts.signature.verified == true
} else := pinning.missing(image)

# METADATA
# description: |
#   The registry facts this evaluation needs (imagegate.facts): a signature check where a
#   `signatures` entry covers the reference pulled, and the tag's digest where pinDigests
#   should have pinned it and did not (for the reason).
lookups := [{"index": index, "reference": reference, "verification": verification} |
	not settings.excluded
	some index, image in images.checked_indexed
	not exemptions.exempt(image)
	images.valid(image)
	reference := pulled_reference(image)
	verification := _verification(image)
	_looked_up(reference, verification)
]

# The signature an image needs: an entry covering the reference pulled, the one written,
# or a mirror's source either stands for; verified where the image is pulled.
_signature_required(image) := _requirements[image.reference.normalized]

# The entry (its id) the image is verified against: "" when no entry covers it, or when
# the covering entry has no id (then no facts are gathered and the image is refused for
# want of them, never let through).
_verification(image) := required.id if {
	required := _signature_required(image)
} else := ""

# signatures.required_any once per reference and evaluation (the lookups, the violations
# and the audit annotation each ask it of the same images). A valid reference's normalized
# string names it whole, and what is pulled for it follows from it: a short key to hash.
_requirements[reference.normalized] := signatures.required_any([pulled_reference(image), reference]) if {
	some image in images.checked
	images.valid(image)
	reference := image.reference
}

_looked_up(_, verification) if verification != ""

_looked_up(reference, _) if {
	reference.digest == ""
	pinning.active
}

# METADATA
# description: The images signed by configured signers, and by which (for the audit log).
verified := [concat("", [images.text(image, "raw"), " by ", concat(", ", _signers(image))]) |
	not settings.excluded
	some image in images.checked
	not exemptions.exempt(image)
	images.valid(image)
	_signature_required(image)
	_verified(image)
]

_error(image) := reason if {
	reason := image.reference.error
	is_string(reason)
	reason != ""
} else := "unparseable reference"

_disallowed_tags contains lower(tag) if some tag in settings.config.disallowedTags

# latest-tag already reports it.
_latest_covers("latest") if settings.config.denyLatest

# The trusted sources, parsed once per evaluation (not once per image).
_trusted_sources := [parsed |
	some source in settings.config.trustedRegistries
	parsed := sources.parse(source)
]

default _trusted := "none configured"

_trusted := concat(", ", settings.config.trustedRegistries) if count(settings.config.trustedRegistries) > 0

_latest_message("") := "no tag or digest (implicit \"latest\"); pin a version tag or a digest"

_latest_message(tag) := concat("", ["tag \"", tag, "\" is not allowed; pin a version tag or a digest"]) if tag != ""

_pull_policy("") := "not set"

_pull_policy(policy) := concat("", ["\"", policy, "\""]) if policy != ""

# signatures and pinDigests on the validating side: a covered image needs a verified
# signature of the digest pulled; a registry failure is a denial with its reason.
package imagegate.validate_test

import data.imagegate.facts
import data.imagegate.fixtures_test as fixtures
import data.imagegate.validate

signed_prod := [{"images": ["registry.example.com/prod"], "keys": ["/keys/release.pub"], "id": "v-release"}]

with_facts(image, facts) := object.union(good("c0", image), {"facts": facts})

no_signature := {"digest": digest, "signature": {"verified": false, "reason": "no signature"}}

verified_by(key) := {
	"digest": digest,
	"signature": {"verified": true, "key": key, "signers": [key], "format": "bundle v0.3"},
}

test_a_verified_signature_is_allowed_and_audited if {
	signed := with_facts("registry.example.com/prod/app:1", verified_by("release.pub"))
	d := validate.decision with input as fixtures.pod([signed])
		with data.imagegate.config.signatures as signed_prod
	d.allowed
	d.auditAnnotations == {"verified-signatures": "registry.example.com/prod/app:1 by release.pub"}
}

test_each_reason_a_signature_is_missing_is_shown if {
	cases := {
		"no signature": {"digest": digest, "signature": {"verified": false, "reason": "no signature"}},
		"signed by another key": {"digest": digest, "signature": {"verified": false, "reason": "signed by another key"}},
		"signature for another digest": {
			"digest": digest,
			"signature": {"verified": false, "reason": "signature for another digest"},
		},
		"registry registry.example.com unreachable: connect ECONNREFUSED 127.0.0.1:5443": {
			"error": "registry registry.example.com unreachable: connect ECONNREFUSED 127.0.0.1:5443",
		},
		"the gateway gathered no registry facts for it": {},
	}
	every reason, facts in cases {
		d := validate.decision with input as fixtures.pod([with_facts("registry.example.com/prod/app:1", facts)])
			with data.imagegate.config.signatures as signed_prod
		not d.allowed
		d.reasons == [concat("", [
			`container "c0" (containers[0]) image "registry.example.com/prod/app:1": `,
			"signature required (registry.example.com/prod): ", reason,
		])]
	}
}

test_a_signature_of_another_digest_than_the_one_pulled_does_not_count if {
	other := "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	d := validate.decision with input as fixtures.pod([with_facts(
		concat("", ["registry.example.com/prod/app@", other]),
		verified_by("release.pub"),
	)])
		with data.imagegate.config.signatures as signed_prod
	not d.allowed
	contains(d.reasons[0], "not of the digest pulled")
}

test_images_outside_every_entry_need_no_signature if {
	d := validate.decision with input as fixtures.pod([good("c0", "registry.example.com/dev/app:1")])
		with data.imagegate.config.signatures as signed_prod
	d.allowed
}

test_an_image_review_is_held_to_the_same_signatures if {
	review := fixtures.image_review(["registry.example.com/prod/app:1"])
	unsigned := json.patch(review, [{"op": "add", "path": "/images/0/facts", "value": no_signature}])
	d := validate.decision with input as unsigned with data.imagegate.config.signatures as signed_prod
	d.reasons == [`image "registry.example.com/prod/app:1": signature required (registry.example.com/prod): no signature`]
	signed := json.patch(review, [{"op": "add", "path": "/images/0/facts", "value": verified_by("release.pub")}])
	validate.decision.allowed with input as signed with data.imagegate.config.signatures as signed_prod
}

test_an_image_pinning_missed_is_refused_with_why if {
	late := "registry registry.example.com did not answer within the review's 3000 ms budget"
	failed := with_facts("registry.example.com/app:1", {"error": late})
	d := validate.decision with input as fixtures.pod([failed]) with data.imagegate.config.pinDigests as "pods"
	d.reasons == [concat("", [
		`container "c0" (containers[0]) image "registry.example.com/app:1": not pinned to a digest (pinDigests); `,
		"pinning failed: registry registry.example.com did not answer within the review's 3000 ms budget",
	])]
	unpinned := with_facts("registry.example.com/app:1", {"digest": digest})
	e := validate.decision with input as fixtures.pod([unpinned]) with data.imagegate.config.pinDigests as "pods"
	e.reasons == [concat("", [
		`container "c0" (containers[0]) image "registry.example.com/app:1": not pinned to a digest (pinDigests); `,
		"the tag names ", digest, " but the mutating webhook did not pin it",
	])]
	pinned := good("c0", concat("", ["registry.example.com/app:1@", digest]))
	validate.decision.allowed with input as fixtures.pod([pinned]) with data.imagegate.config.pinDigests as "pods"
}

test_require_digest_trusts_pinning_of_a_templates_pods if {
	deployment := fixtures.admission("Deployment", "CREATE", [good("web", "registry.example.com/app:1")])
	not validate.decision.allowed with input as deployment with data.imagegate.config.requireDigest as true
	validate.decision.allowed with input as deployment
		with data.imagegate.config.requireDigest as true
		with data.imagegate.config.pinDigests as "pods"

	# A Pod is checked after mutation: by tag, it was not pinned, and the reason is given once.
	reset := with_facts("registry.example.com/app:1", {"error": "registry registry.example.com unreachable: ECONNRESET"})
	d := validate.decision with input as fixtures.pod([reset])
		with data.imagegate.config.requireDigest as true
		with data.imagegate.config.pinDigests as "pods"
	d.reasons == [concat("", [
		`container "c0" (containers[0]) image "registry.example.com/app:1": `,
		"no digest; images here must be pinned by digest (requireDigest); pinning failed: ",
		"registry registry.example.com unreachable: ECONNRESET",
	])]
}

test_warn_mode_shows_a_missing_signature_as_a_warning if {
	d := validate.decision with input as fixtures.pod([with_facts("registry.example.com/prod/app:1", no_signature)])
		with data.imagegate.config.signatures as signed_prod
		with data.imagegate.config.enforcement as "warn"
	d.allowed
	count(d.warnings) == 1
	contains(d.warnings[0], "no signature")
}

test_check_offline_leaves_facts_unjudged_and_nothing_else if {
	offline := {"unverified": "offline"}
	d := validate.decision with input as fixtures.pod([
		with_facts("registry.example.com/prod/app:1", offline),
		with_facts("registry.example.com/app:latest", offline),
	])
		with data.imagegate.config.signatures as signed_prod
		with data.imagegate.config.pinDigests as "pods"
		with data.imagegate.config.requireDigest as true
	rules_of(d) == ["latest-tag"]
}

# A signature requirement on a source follows its images onto a mirror, whether the mutating
# webhook rewrote them or a pod spec wrote the mirror's path itself: judged where pulled.
hub_mirror := {"docker.io": "harbor.example.com/dockerhub-proxy"}

signed_acme := [{"images": ["docker.io/acme"], "keys": ["/keys/acme.pub"], "id": "v-acme"}]

mirrored_acme := "harbor.example.com/dockerhub-proxy/acme/app:1.0"

test_a_source_signature_requirement_holds_on_its_mirror if {
	unsigned := with_facts(mirrored_acme, no_signature)
	d := validate.decision with input as fixtures.pod([unsigned])
		with data.imagegate.config.trustedRegistries as ["harbor.example.com"]
		with data.imagegate.config.mirrors as hub_mirror
		with data.imagegate.config.signatures as signed_acme
	d.reasons == [concat("", [
		`container "c0" (containers[0]) image "harbor.example.com/dockerhub-proxy/acme/app:1.0": `,
		"signature required (docker.io/acme): no signature",
	])]
	signed := with_facts(mirrored_acme, verified_by("acme.pub"))
	validate.decision.allowed with input as fixtures.pod([signed])
		with data.imagegate.config.trustedRegistries as ["harbor.example.com"]
		with data.imagegate.config.mirrors as hub_mirror
		with data.imagegate.config.signatures as signed_acme

	# Other repositories on the mirror are not covered by the entry.
	validate.decision.allowed with input as fixtures.pod([good("c0", "harbor.example.com/dockerhub-proxy/other/app:1")])
		with data.imagegate.config.trustedRegistries as ["harbor.example.com"]
		with data.imagegate.config.mirrors as hub_mirror
		with data.imagegate.config.signatures as signed_acme
}

test_the_signature_is_looked_up_where_the_image_is_pulled if {
	needed := facts.needed with input as fixtures.pod([good("c0", mirrored_acme)])
		with data.imagegate.config.mirrors as hub_mirror
		with data.imagegate.config.signatures as signed_acme
	[[r.registry, r.repository, r.verification] | some r in needed.validate] == [
		["harbor.example.com", "dockerhub-proxy/acme/app", "v-acme"],
	]

	# A template its controller owns keeps the written reference; its pods are pulled from
	# the mirror, so that is where the signature is looked for.
	owned := fixtures.build({
		"kind": "ReplicaSet", "operation": "CREATE",
		"containers": [good("web", "docker.io/acme/app:1.0")],
		"controller": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
	})
	from_template := facts.needed with input as owned
		with data.imagegate.config.mirrors as hub_mirror
		with data.imagegate.config.signatures as signed_acme
	[[r.registry, r.repository] | some r in from_template.validate] == [["harbor.example.com", "dockerhub-proxy/acme/app"]]
}

test_a_catch_all_rewrite_keeps_the_requirements_of_what_it_replaced if {
	signed_mirror_path := with_facts("mirror.example.com/prod/app:1", no_signature)
	replaced := validate.decision with input as fixtures.pod([signed_mirror_path])
		with data.imagegate.config.trustedRegistries as ["mirror.example.com"]
		with data.imagegate.config.rewriteRegistry as "mirror.example.com"
		with data.imagegate.config.signatures as signed_prod
	contains(replaced.reasons[0], "signature required (registry.example.com/prod): no signature")

	prepended := with_facts("mirror.example.com/registry.example.com/prod/app:1", no_signature)
	p := validate.decision with input as fixtures.pod([prepended])
		with data.imagegate.config.trustedRegistries as ["mirror.example.com"]
		with data.imagegate.config.rewriteRegistry as "mirror.example.com"
		with data.imagegate.config.rewriteMode as "prepend"
		with data.imagegate.config.signatures as signed_prod
	contains(p.reasons[0], "signature required (registry.example.com/prod): no signature")
}

# The requirement is looked up by the reference's normalized name: a reference without it
# is invalid, so denied, never let through unchecked (the gateway always writes it).
test_a_reference_without_its_normalized_name_is_denied_not_let_through_unsigned if {
	pod := fixtures.pod([with_facts("registry.example.com/prod/app:1", no_signature)])
	image := pod.images[0]
	reference := object.remove(image.reference, {"normalized"})
	nameless := object.union(object.remove(image, {"reference"}), {"reference": reference})
	d := validate.decision with input as object.union(pod, {"images": [nameless]})
		with data.imagegate.config.signatures as signed_prod
	not d.allowed
	[v.rule | some v in d.violations] == ["invalid-reference"]
}

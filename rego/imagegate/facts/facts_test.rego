# METADATA
# description: |
#   Which registry lookups a review asks for: only what pinDigests and `signatures` need,
#   of the registry the image is pulled from, and nothing for images no rule judges.
package imagegate.facts_test

import data.imagegate.facts
import data.imagegate.fixtures_test as fixtures

digest := "sha256:4f7a9d3e1b8c2a6f0e5d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f"

pod_of(images) := fixtures.pod([fixtures.container(sprintf("c%d", [i]), image) | some i, image in images])

signed_prod := [{"images": ["registry.example.com/prod"], "keys": ["/keys/release.pub"], "id": "v-release"}]

lookup(index, registry, repository, tag, verification) := {
	"index": index, "registry": registry, "repository": repository,
	"tag": tag, "digest": "", "verification": verification,
}

# The lookups alone, without the bound that comes with them.
lookups(needed) := object.remove(needed, {"maxLookups"})

test_the_bound_on_lookups_comes_with_them_per_namespace if {
	facts.needed.maxLookups == 256 with input as pod_of(["registry.example.com/prod/app:1"])
	review := object.union(pod_of(["registry.example.com/prod/app:1"]), {"namespace": "ci-7"})
	needed := facts.needed with input as review
		with data.imagegate.config.maxLookups as 64
		with data.imagegate.config.namespaces as {"ci-*": {"maxLookups": 8}}
	needed.maxLookups == 8
}

test_nothing_is_asked_without_pinning_or_signatures if {
	lookups(facts.needed) == {"mutate": [], "validate": []} with input as pod_of(["registry.example.com/prod/app:1"])
}

test_pinning_asks_the_tags_of_a_pod_once_for_the_mutating_side if {
	review := pod_of(["registry.example.com/app:1", concat("", ["registry.example.com/app@", digest]), "nginx"])
	needed := facts.needed with input as review with data.imagegate.config.pinDigests as "pods"
	needed.mutate == [
		lookup(0, "registry.example.com", "app", "1", ""),
		lookup(2, "docker.io", "library/nginx", "", ""),
	]

	# What the validating side sees has been pinned; it asks only for an image still by tag
	# (to say why it was not pinned).
	needed.validate == needed.mutate
}

test_pods_mode_leaves_templates_alone_and_all_pins_uncontrolled_ones if {
	deployment := fixtures.admission("Deployment", "CREATE", [fixtures.container("web", "registry.example.com/app:1")])
	pods := facts.needed with input as deployment with data.imagegate.config.pinDigests as "pods"
	lookups(pods) == {"mutate": [], "validate": []}
	every_template := facts.needed with input as deployment with data.imagegate.config.pinDigests as "all"
	every_template.mutate == [lookup(0, "registry.example.com", "app", "1", "")]

	controlled := fixtures.build({
		"kind": "ReplicaSet", "operation": "CREATE",
		"containers": [fixtures.container("web", "registry.example.com/app:1")],
		"controller": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
	})
	owned := facts.needed with input as controlled with data.imagegate.config.pinDigests as "all"
	lookups(owned) == {"mutate": [], "validate": []}
}

test_a_pin_is_resolved_where_the_rewrite_sends_the_image if {
	needed := facts.needed with input as pod_of(["nginx:1.27"])
		with data.imagegate.config.pinDigests as "pods"
		with data.imagegate.config.mirrors as {"docker.io": "harbor.example.com/dockerhub-proxy"}
	needed.mutate == [lookup(0, "harbor.example.com", "dockerhub-proxy/library/nginx", "1.27", "")]
}

test_signatures_are_asked_only_where_an_entry_covers_the_image if {
	review := pod_of(["registry.example.com/prod/app:1", "registry.example.com/dev/app:1", "ghcr.io/acme/x:2"])
	needed := facts.needed with input as review with data.imagegate.config.signatures as signed_prod
	lookups(needed) == {
		"mutate": [],
		"validate": [lookup(0, "registry.example.com", "prod/app", "1", "v-release")],
	}
}

test_the_most_specific_entry_names_the_verification if {
	entries := [
		{"images": ["registry.example.com"], "keys": ["/keys/any.pub"], "id": "v-any"},
		{"images": ["registry.example.com/prod"], "keys": ["/keys/release.pub"], "id": "v-release"},
		{"images": ["registry.example.com/*/tools"], "keys": ["/keys/tools.pub"], "id": "v-tools"},
	]
	review := pod_of([
		"registry.example.com/prod/app:1",
		"registry.example.com/dev/app:1",
		"registry.example.com/team/tools:3",
	])
	needed := facts.needed with input as review with data.imagegate.config.signatures as entries
	[[r.index, r.verification] | some r in needed.validate] == [
		[0, "v-release"],
		[1, "v-any"],
		[2, "v-tools"],
	]
}

test_an_image_review_asks_for_signatures_and_never_pins if {
	review := fixtures.image_review(["registry.example.com/prod/app:1"])
	needed := facts.needed with input as review
		with data.imagegate.config.signatures as signed_prod
		with data.imagegate.config.pinDigests as "all"
	lookups(needed) == {
		"mutate": [],
		"validate": [lookup(0, "registry.example.com", "prod/app", "1", "v-release")],
	}
}

test_images_no_rule_judges_cost_no_lookup if {
	config := {"signatures": signed_prod, "pinDigests": "pods", "exemptImages": ["registry.example.com/prod/tools/*"]}
	cases := [
		# excluded namespace
		fixtures.build({
			"kind": "Pod", "operation": "CREATE", "namespace": "kube-system",
			"containers": [fixtures.container("c", "registry.example.com/prod/app:1")],
		}),
		# exempt image
		pod_of(["registry.example.com/prod/tools/debug:1"]),
		# an invalid reference (refused without a lookup)
		fixtures.pod([object.union(
			fixtures.container("c", "Registry.example.com/prod/APP"),
			{"reference": fixtures.invalid("bad")},
		)]),
		# an image an update did not change
		fixtures.admission("Pod", "UPDATE", [object.union(
			fixtures.container("c", "registry.example.com/prod/app:1"),
			{"new": false},
		)]),
		# a deletion
		fixtures.admission("Pod", "DELETE", [fixtures.container("c", "registry.example.com/prod/app:1")]),
	]
	every review in cases {
		needed := facts.needed with input as review
			with data.imagegate.config.signatures as config.signatures
			with data.imagegate.config.pinDigests as config.pinDigests
			with data.imagegate.config.exemptImages as config.exemptImages
		lookups(needed) == {"mutate": [], "validate": []}
	}
}

test_a_signed_image_pinned_by_digest_is_checked_at_that_digest if {
	review := pod_of([concat("", ["registry.example.com/prod/app:1@", digest])])
	needed := facts.needed with input as review
		with data.imagegate.config.signatures as signed_prod
		with data.imagegate.config.pinDigests as "pods"
	needed.mutate == []
	needed.validate == [object.union(
		lookup(0, "registry.example.com", "prod/app", "1", "v-release"),
		{"digest": digest},
	)]
}

test_a_keyless_entry_is_looked_up_like_a_keyed_one if {
	entries := [{
		"images": ["registry.example.com/prod"], "trustRoot": "public-good", "id": "v-keyless",
		"identities": [{"issuer": "https://token.actions.githubusercontent.com", "subject": "https://github.com/acme/*"}],
	}]
	needed := facts.needed with input as pod_of(["registry.example.com/prod/app:1", "registry.example.com/dev/x:1"])
		with data.imagegate.config.signatures as entries
		with data.imagegate.config.pinDigests as "pods"
	[[r.index, r.verification] | some r in needed.validate] == [[0, "v-keyless"], [1, ""]]
}

# An entry the gateway's loader did not compile has no id: nothing is looked up for it, and
# the validating decision refuses the image for want of facts (never lets it through).
test_an_entry_without_an_id_is_never_looked_up if {
	entries := [{"images": ["registry.example.com/prod"], "keys": ["/keys/release.pub"]}]
	needed := facts.needed with input as pod_of([concat("", ["registry.example.com/prod/app@", digest])])
		with data.imagegate.config.signatures as entries
	needed.validate == []
}

test_only_the_decision_about_to_be_made_is_asked_about if {
	review := pod_of(["registry.example.com/prod/app:1"])
	both := facts.needed with input as review
		with data.imagegate.config.signatures as signed_prod
		with data.imagegate.config.pinDigests as "pods"
	count(both.mutate) == 1
	count(both.validate) == 1
	mutating := facts.needed with input as object.union(review, {"factsFor": "mutate"})
		with data.imagegate.config.signatures as signed_prod
		with data.imagegate.config.pinDigests as "pods"
	mutating.mutate == both.mutate
	mutating.validate == []
	validating := facts.needed with input as object.union(review, {"factsFor": "validate"})
		with data.imagegate.config.signatures as signed_prod
		with data.imagegate.config.pinDigests as "pods"
	validating.mutate == []
	validating.validate == both.validate
}

# The decision and its lookups in one evaluation: the same lookups as `needed`, whatever
# facts are already on the images, and the decision they would have with those facts.
test_decided_is_the_decision_with_the_lookups_needed_asks_for if {
	pod := pod_of(["registry.example.com/prod/app:1", "registry.example.com/dev/app:1"])
	review := object.union(pod, {"factsFor": "validate"})
	needed := facts.needed with input as review with data.imagegate.config.signatures as signed_prod
	bare := facts.decided with input as review with data.imagegate.config.signatures as signed_prod
	bare.lookups == needed.validate
	count(bare.lookups) == 1
	bare.maxLookups == needed.maxLookups
	not bare.decision.allowed

	# The lookups are the same once facts are on the images: they never depend on them.
	signed := json.patch(review, [{"op": "add", "path": "/images/0/facts", "value": {"signature": {
		"verified": true, "key": "release.pub", "signers": ["release.pub"], "format": "bundle",
	}}}])
	with_facts := facts.decided with input as signed with data.imagegate.config.signatures as signed_prod
	with_facts.lookups == bare.lookups
}

test_decided_names_the_mutating_decision_when_asked_for_it if {
	review := object.union(pod_of(["registry.example.com/app:1"]), {"factsFor": "mutate"})
	decided := facts.decided with input as review with data.imagegate.config.pinDigests as "pods"
	decided.lookups == [lookup(0, "registry.example.com", "app", "1", "")]
	decided.decision == data.imagegate.mutate.decision with input as review with data.imagegate.config.pinDigests as "pods"
}

test_decided_is_undefined_without_a_decision_named if {
	not facts.decided with input as pod_of(["registry.example.com/app:1"])
}

# maxImages as a namespace's policy (the gateway enforces the top level itself).
package imagegate.validate_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.settings
import data.imagegate.validate

three := [
	good("a", "registry.example.com/a:1"),
	good("b", "registry.example.com/b:1"),
	good("c", "registry.example.com/c:1"),
]

test_a_namespace_may_lower_max_images if {
	d := validate.decision with input as object.union(fixtures.pod(three), {"namespace": "team-small"})
		with data.imagegate.config.namespaces as {"team-small": {"maxImages": 2}}
	not d.allowed
	d.violations == [{
		"rule": "max-images", "image": "", "container": "", "path": "",
		"message": "the object has 3 images; at most 2 are allowed here (maxImages)",
	}]
	validate.decision.allowed with input as fixtures.pod(three)
		with data.imagegate.config.namespaces as {"team-small": {"maxImages": 2}}
}

# Every image of the object counts, new or not: the bound is on what is reviewed.
test_max_images_counts_old_images_on_update if {
	old := [object.union(image, {"new": false}) | some image in three]
	d := validate.decision with input as fixtures.admission("Deployment", "UPDATE", old)
		with data.imagegate.config.maxImages as 2
	[v.rule | some v in d.violations] == ["max-images"]
}

test_max_images_follows_enforcement_and_exclusions if {
	review := object.union(fixtures.pod(three), {"namespace": "team-small"})
	d := validate.decision with input as review
		with data.imagegate.config.maxImages as 1
		with data.imagegate.config.enforcement as "warn"
	d.allowed
	d.warnings == ["the object has 3 images; at most 1 are allowed here (maxImages)"]
	validate.decision.violations == [] with input as review
		with data.imagegate.config.maxImages as 1
		with data.imagegate.config.excludeNamespaces as ["team-small"]
}

test_max_images_falls_back_to_the_default_when_malformed if {
	every value in [0, -1, 1.5, "10", null, true] {
		settings.config.maxImages == 32768 with data.imagegate.config.maxImages as value
	}
}

# An answer carries the first max_shown messages and how many more there are; the
# violations stay complete (the audit reports them all).
test_an_answer_counts_what_it_does_not_show if {
	# Three violations each: untrusted, no tag, pull policy not set.
	many := [fixtures.container(sprintf("c%d", [i]), "quay.io/evil/miner") | some i in numbers.range(1, 3)]
	d := validate.decision with input as fixtures.pod(many) with validate.max_shown as 4
	count(d.violations) == 9
	count(d.reasons) == 5
	d.reasons[4] == "… and 5 more violations"
	endswith(d.auditAnnotations.violations, "; … and 5 more violations")
	few := validate.decision with input as fixtures.pod(array.slice(many, 0, 1)) with validate.max_shown as 4
	count(few.reasons) == 3
	validate.max_shown == 512
}

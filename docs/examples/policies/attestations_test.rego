package imagegate.examples.attestations_test

import data.imagegate.examples.attestations

# The statements below are trimmed from what `cosign attest` wrote for the conformance
# fixtures (test/fixtures/sigstore); test/policy/example-policies.test.ts runs this policy
# on the real ones, verified by the gateway.
builder := "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"

repository := "https://github.com/acme/app"

fresh := "2026-12-05T10:00:00Z"

pod(found) := {"images": [image(true, {"attestations": found})]}

provenance(id, repository) := {
	"type": attestations.slsa,
	"digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
	"signer": "release.pub",
	"statement": {
		"_type": "https://in-toto.io/Statement/v0.1",
		"predicateType": attestations.slsa,
		"predicate": {
			"buildDefinition": {"externalParameters": {"workflow": {"repository": repository}}},
			"runDetails": {"builder": {"id": id}},
		},
	},
}

scan(critical, finished) := {
	"type": attestations.vuln,
	"digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
	"signer": "release.pub",
	"statement": {"predicate": {
		"scanner": {"result": {"summary": {"critical": critical, "high": 1}}},
		"metadata": {"scanFinishedOn": finished},
	}},
}

image(verified, facts) := {
	"raw": "registry.example.com/app:1",
	"facts": object.union({"signature": {"verified": verified}}, facts),
}

# 2026-12-07T00:00:00Z
now := 1796601600000000000

good := [provenance(builder, repository), scan(0, fresh)]

test_provenance_and_a_fresh_clean_scan_pass if {
	count(attestations.violations) == 0 with input as pod(good)
		with time.now_ns as now
}

test_each_requirement_is_its_own_violation if {
	cases := {
		"no SLSA provenance from": [scan(0, fresh)],
		"no vulnerability scan": [provenance(builder, repository)],
		"2 critical vulnerabilities": [provenance(builder, repository), scan(2, fresh)],
		"more than 7 days ago": [provenance(builder, repository), scan(0, "2026-11-29T23:59:59Z")],
	}
	every expected, found in cases {
		violations := attestations.violations with input as pod(found)
			with time.now_ns as now
		count(violations) == 1
		some message in violations
		contains(message, expected)
	}
}

test_provenance_from_another_builder_or_repository_does_not_count if {
	every wrong in [
		provenance("https://github.com/mallory/app/.github/workflows/release.yml@refs/tags/v1.0.0", "https://github.com/acme/app"),
		provenance(builder, "https://github.com/acme/app-fork"),
	] {
		violations := attestations.violations with input as pod([wrong, scan(0, fresh)])
			with time.now_ns as now
		violations == {concat("", [
			"image registry.example.com/app:1: no SLSA provenance from ", builder,
			" for https://github.com/acme/app",
		])}
	}
}

test_the_latest_scan_decides if {
	found := [provenance(builder, repository), scan(3, "2026-12-01T10:00:00Z"), scan(0, "2026-12-06T10:00:00Z")]
	count(attestations.violations) == 0 with input as pod(found)
		with time.now_ns as now
}

test_a_statement_left_out_for_its_size_is_no_attestation if {
	too_large := object.union(provenance(builder, repository), {"statement": null})
	violations := attestations.violations with input as pod([too_large, scan(0, fresh)])
		with time.now_ns as now
	count(violations) == 1
}

test_unverified_images_are_left_to_the_signature_rule if {
	count(attestations.violations) == 0 with input as {"images": [image(false, {})]}
}

test_settings_come_from_data if {
	settings := {"builder": "https://ci.example.com/release", "repository": "https://git.example.com/app", "maxScanAgeDays": 30}
	found := [provenance("https://ci.example.com/release", "https://git.example.com/app"), scan(0, "2026-11-20T00:00:00Z")]
	count(attestations.violations) == 0 with input as pod(found)
		with data.imagegate_examples as settings
		with time.now_ns as now
}

# METADATA
# description: |
#   Attestations as policy input, an example (docs/policy-input.md, "Attestations"). For
#   every image whose signature the gateway verified, require:
#
#   - SLSA v1 provenance from the release workflow (`builder`) of the source repository
#     (`repository`);
#   - a vulnerability scan (cosign's vuln predicate) finished at most `maxScanAgeDays` ago,
#     with no critical finding.
#
#   Both attestations must be read by the image's `signatures` entry, e.g.
#   `attestations: [slsaprovenance1, vuln]`: the gateway verifies them with the entry's keys
#   or identities, checks they are about the digest pulled, and puts their statements in
#   `input.images[i].facts.attestations`. Settings come from data.imagegate_examples (this
#   example's defaults below). It compiles to wasm: imagegate supplies the time built-ins.
#   Tested by attestations_test.rego (`make test-rego`) and, against attestations the real
#   `cosign attest` made, by test/policy/example-policies.test.ts.
package imagegate.examples.attestations

slsa := "https://slsa.dev/provenance/v1"

vuln := "https://cosign.sigstore.dev/attestation/vuln/v1"

defaults := {
	"builder": "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0",
	"repository": "https://github.com/acme/app",
	"maxScanAgeDays": 7,
}

settings := object.union(defaults, data.imagegate_examples) if {
	is_object(data.imagegate_examples)
} else := defaults

day_ns := ((24 * 60) * 60) * 1000000000

# METADATA
# title: Violations
# description: One message per image and unmet requirement.
# entrypoint: true
violations contains message if {
	some image in _verified
	not _provenance_ok(image)
	message := concat("", ["image ", image.raw, ": no SLSA provenance from ", settings.builder, " for ", settings.repository])
}

violations contains message if {
	some image in _verified
	not _scan(image)
	message := concat("", ["image ", image.raw, ": no vulnerability scan"])
}

violations contains message if {
	some image in _verified
	scan := _scan(image)
	scan.scanner.result.summary.critical > 0
	message := concat("", [
		"image ", image.raw, ": ",
		format_int(scan.scanner.result.summary.critical, 10), " critical vulnerabilities",
	])
}

violations contains message if {
	some image in _verified
	scan := _scan(image)
	finished := time.parse_rfc3339_ns(scan.metadata.scanFinishedOn)
	time.now_ns() - finished > settings.maxScanAgeDays * day_ns
	message := concat("", [
		"image ", image.raw, ": its vulnerability scan finished ", scan.metadata.scanFinishedOn,
		", more than ", format_int(settings.maxScanAgeDays, 10), " days ago",
	])
}

_verified contains image if {
	some image in input.images
	image.facts.signature.verified == true
}

# The statement of a verified attestation of this type (null when it was too large to pass).
_statements(image, type) := [a.statement |
	some a in image.facts.attestations
	a.type == type
	is_object(a.statement)
]

_provenance_ok(image) if {
	some statement in _statements(image, slsa)
	statement.predicate.runDetails.builder.id == settings.builder
	statement.predicate.buildDefinition.externalParameters.workflow.repository == settings.repository
}

# The latest scan, when there are several.
_scan(image) := latest[0] if {
	scans := [s.predicate | some s in _statements(image, vuln)]
	last := max({s.metadata.scanFinishedOn | some s in scans})
	latest := [s | some s in scans; s.metadata.scanFinishedOn == last]
}

# Keyless signatures and attestations on the validating side: an entry's signers may be
# keyless identities; the attestations it requires must be verified for the digest pulled,
# each missing one named with why; the audit names every signer.
package imagegate.validate_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.validate

workflow := concat(" ", [
	"https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0",
	"(https://token.actions.githubusercontent.com)",
])

slsa := "https://slsa.dev/provenance/v1"

vuln := "https://cosign.sigstore.dev/attestation/vuln/v1"

keyless_prod := [{
	"images": ["registry.example.com/prod"],
	"trustRoot": "public-good",
	"id": "v-keyless",
	"identities": [{"issuer": "https://token.actions.githubusercontent.com", "subject": "https://github.com/acme/app/**"}],
	"attestations": [slsa, {"type": vuln, "required": false}],
}]

signed_by(signers) := {
	"verified": true, "signers": signers, "format": "bundle v0.3",
	"transparencyLog": "verified by public-good",
}

provenance := {"type": slsa, "digest": "sha256:aa", "signer": workflow, "statement": {"predicateType": slsa}}

keyless_facts(attestations, failures) := {
	"digest": digest,
	"signature": signed_by([workflow]),
	"attestations": attestations,
	"attestationFailures": failures,
}

test_a_keyless_signature_with_its_required_attestation_is_allowed_and_audited if {
	facts := keyless_facts([provenance], {vuln: {"reason": "no attestation"}})
	image := with_facts("registry.example.com/prod/app:1", facts)
	d := validate.decision with input as fixtures.pod([image]) with data.imagegate.config.signatures as keyless_prod
	d.allowed
	d.auditAnnotations == {"verified-signatures": concat("", ["registry.example.com/prod/app:1 by ", workflow])}
}

test_a_missing_required_attestation_is_refused_with_why if {
	failures := {
		slsa: {"reason": "signed by another identity", "detail": "https://github.com/mallory/app/… (issuer)"},
		vuln: {"reason": "no attestation"},
	}
	image := with_facts("registry.example.com/prod/app:1", keyless_facts([], failures))
	d := validate.decision with input as fixtures.pod([image]) with data.imagegate.config.signatures as keyless_prod
	not d.allowed
	d.reasons == [concat("", [
		`container "c0" (containers[0]) image "registry.example.com/prod/app:1": `,
		"attestation required (registry.example.com/prod): ",
		"https://slsa.dev/provenance/v1: signed by another identity",
	])]
	rules_of(d) == ["attestation"]

	# Facts that say nothing about the type: still refused, never assumed.
	bare := with_facts("registry.example.com/prod/app:1", {"digest": digest, "signature": signed_by([workflow])})
	e := validate.decision with input as fixtures.pod([bare]) with data.imagegate.config.signatures as keyless_prod
	endswith(e.reasons[0], "https://slsa.dev/provenance/v1: no attestation")
}

test_an_unsigned_image_is_refused_for_its_signature_alone if {
	unsigned := {"digest": digest, "signature": {"verified": false, "reason": "no verified signing time"}}
	d := validate.decision with input as fixtures.pod([with_facts("registry.example.com/prod/app:1", unsigned)])
		with data.imagegate.config.signatures as keyless_prod
	rules_of(d) == ["signature"]
	endswith(d.reasons[0], "signature required (registry.example.com/prod): no verified signing time")
}

test_every_signer_of_a_threshold_is_audited if {
	signers := ["release.pub", workflow]
	image := with_facts("registry.example.com/prod/app:1", {"digest": digest, "signature": signed_by(signers)})
	entries := [{"images": ["registry.example.com/prod"], "keys": ["/k/release.pub"], "id": "v-two", "threshold": 2}]
	d := validate.decision with input as fixtures.pod([image]) with data.imagegate.config.signatures as entries
	d.allowed
	d.auditAnnotations["verified-signatures"] == concat("", ["registry.example.com/prod/app:1 by release.pub, ", workflow])

	# A verified answer that names no signer is not a verification.
	nobody := with_facts("registry.example.com/prod/app:1", {"digest": digest, "signature": signed_by([])})
	not validate.decision.allowed with input as fixtures.pod([nobody]) with data.imagegate.config.signatures as entries
}

test_an_entry_the_loader_did_not_compile_refuses_for_want_of_facts if {
	entries := [{"images": ["registry.example.com/prod"], "keys": ["/k/release.pub"]}]
	d := validate.decision with input as fixtures.pod([good("c0", "registry.example.com/prod/app:1")])
		with data.imagegate.config.signatures as entries
	endswith(d.reasons[0], "signature required (registry.example.com/prod): the gateway gathered no registry facts for it")
}

test_a_pinned_image_is_verified_at_its_own_digest if {
	pinned := concat("", ["registry.example.com/prod/app:1@", digest])
	image := with_facts(pinned, keyless_facts([provenance], {}))
	validate.decision.allowed with input as fixtures.pod([image]) with data.imagegate.config.signatures as keyless_prod
}

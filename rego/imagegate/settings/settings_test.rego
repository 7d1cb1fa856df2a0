package imagegate.settings_test

import data.imagegate.settings

overrides := {
	"team-*": {"trustedRegistries": ["registry.example.com/teams"], "enforcement": "warn"},
	"team-a*": {"enforcement": "dryrun"},
	"team-b?": {"denyLatest": false},
	"team-?x": {"denyLatest": false, "pullPolicy": "Never"},
	"team-x?": {"denyLatest": false, "pullPolicy": "IfNotPresent"},
	"team-audit": {"enforcement": "deny", "breakGlass": true},
	"*-prod": {"enforcement": "deny"},
	"broken": "not an object",
	"sneaky": {"namespaces": {"*": {"enforcement": "dryrun"}}, "enforcement": "warn"},
}

test_bundle_defaults if {
	settings.config == {
		"trustedRegistries": ["registry.example.com", "ghcr.io/acme", "localhost:5000"],
		"denyLatest": true,
		"pullPolicy": "Always",
		"rewriteRegistry": null,
		"rewriteMode": "replace",
		"rewriteIgnore": [],
		"mirrors": {},
		"imagePullSecret": null,
		"imagePullSecretMode": "replace",
		"defaultStorageClass": null,
		"excludeNamespaces": ["kube-system"],
		"enforcement": "deny",
		"breakGlass": false,
		"maxImages": 32768,
		"maxLookups": 256,
		"disallowedTags": [],
		"requireDigest": false,
		"exemptImages": [],
		"pinDigests": false,
		"signatures": [],
	} with input as {"namespace": "default"}
}

test_missing_configuration_is_safe if {
	settings.config == {
		"trustedRegistries": [],
		"denyLatest": true,
		"pullPolicy": null,
		"rewriteRegistry": null,
		"rewriteMode": "replace",
		"rewriteIgnore": [],
		"mirrors": {},
		"imagePullSecret": null,
		"imagePullSecretMode": "replace",
		"defaultStorageClass": null,
		"excludeNamespaces": [],
		"enforcement": "deny",
		"breakGlass": false,
		"maxImages": 32768,
		"maxLookups": 256,
		"disallowedTags": [],
		"requireDigest": false,
		"exemptImages": [],
		"pinDigests": false,
		"signatures": [],
	} with input as {"namespace": "default"} with data.imagegate.config as {}
}

test_malformed_values_fall_back_to_safe_defaults if {
	malformed := {
		"trustedRegistries": [42, "registry.example.com", null],
		"denyLatest": "no",
		"pullPolicy": "always",
		"rewriteRegistry": "  ",
		"rewriteMode": "Prepend",
		"rewriteIgnore": "docker.io",
		"imagePullSecret": 7,
		"imagePullSecretMode": "merge",
		"defaultStorageClass": "",
		"excludeNamespaces": {"kube-system": true},
		"enforcement": "Warn",
		"breakGlass": "true",
		"maxLookups": 0.5,
		"namespaces": ["not", "an", "object"],
	}
	c := settings.config with input as {"namespace": "default"} with data.imagegate.config as malformed
	c.trustedRegistries == ["registry.example.com"]
	c.denyLatest == true
	c.pullPolicy == null
	c.rewriteRegistry == null
	c.rewriteMode == "replace"
	c.rewriteIgnore == ["docker.io"]
	c.imagePullSecret == null
	c.imagePullSecretMode == "replace"
	c.defaultStorageClass == null
	c.excludeNamespaces == []
	c.enforcement == "deny"
	c.breakGlass == false
	c.maxLookups == 256
}

test_config_that_is_not_an_object_is_ignored if {
	c := settings.config with input as {"namespace": "default"} with data.imagegate.config as "deny everything"
	c.enforcement == "deny"
	c.trustedRegistries == []
}

test_explicit_values_are_kept if {
	explicit := {
		"pullPolicy": "IfNotPresent",
		"rewriteRegistry": " mirror.example.com ",
		"rewriteMode": "prepend",
		"imagePullSecret": "regcred",
		"imagePullSecretMode": "append",
		"defaultStorageClass": "standard",
		"denyLatest": false,
		"breakGlass": true,
		"enforcement": "dryrun",
	}
	c := settings.config with input as {"namespace": "default"} with data.imagegate.config as explicit
	c.pullPolicy == "IfNotPresent"
	c.rewriteRegistry == "mirror.example.com"
	c.rewriteMode == "prepend"
	c.imagePullSecret == "regcred"
	c.imagePullSecretMode == "append"
	c.defaultStorageClass == "standard"
	c.denyLatest == false
	c.breakGlass == true
	c.enforcement == "dryrun"
}

test_namespace_without_override_gets_the_base if {
	settings.config.enforcement == "deny" with input as {"namespace": "default"}
		with data.imagegate.config.namespaces as overrides
	not settings.override_key with input as {"namespace": "default"}
		with data.imagegate.config.namespaces as overrides
}

test_glob_override_replaces_only_the_keys_it_names if {
	c := settings.config with input as {"namespace": "team-c"} with data.imagegate.config.namespaces as overrides
	c.trustedRegistries == ["registry.example.com/teams"]
	c.enforcement == "warn"
	c.denyLatest == true
	c.pullPolicy == "Always"
}

test_exact_name_beats_every_glob if {
	key := settings.override_key with input as {"namespace": "team-audit"}
		with data.imagegate.config.namespaces as overrides
	key == "team-audit"
	c := settings.config with input as {"namespace": "team-audit"} with data.imagegate.config.namespaces as overrides
	c.enforcement == "deny"
	c.breakGlass == true
	c.trustedRegistries == ["registry.example.com", "ghcr.io/acme", "localhost:5000"]
}

test_more_literal_characters_win if {
	# "team-a*" (6 literal characters) beats "team-*" (5)
	settings.override_key == "team-a*" with input as {"namespace": "team-alpha"}
		with data.imagegate.config.namespaces as overrides
	settings.config.enforcement == "dryrun" with input as {"namespace": "team-alpha"}
		with data.imagegate.config.namespaces as overrides

	# "team-b?" (6) beats "team-*" (5); "?" is a wildcard, not a literal
	settings.override_key == "team-b?" with input as {"namespace": "team-b1"}
		with data.imagegate.config.namespaces as overrides
}

test_groups_are_not_literal_characters if {
	# "team-alpha*" (10 literal characters) beats "team-[a-z]*" (5) and "team-{alpha,beta}" (5)
	groups := {
		"team-[a-z]*": {"enforcement": "warn"},
		"team-{alpha,beta}": {"enforcement": "warn"},
		"team-alpha*": {"enforcement": "dryrun"},
	}
	settings.override_key == "team-alpha*" with input as {"namespace": "team-alpha"}
		with data.imagegate.config.namespaces as groups

	# "team-{alpha,beta}" and "team-*" tie at 5; "team-*" sorts first
	settings.override_key == "team-*" with input as {"namespace": "team-beta"}
		with data.imagegate.config.namespaces as object.union(groups, {"team-*": {}})
}

test_ties_go_to_the_lexically_smallest_key if {
	# "team-?x" and "team-x?" both match "team-xx" with 6 literal characters
	settings.override_key == "team-?x" with input as {"namespace": "team-xx"}
		with data.imagegate.config.namespaces as overrides
	settings.config.pullPolicy == "Never" with input as {"namespace": "team-xx"}
		with data.imagegate.config.namespaces as overrides

	# "*-prod" (5) ties with "team-*" (5) for "team-prod"; "*-prod" sorts first
	settings.override_key == "*-prod" with input as {"namespace": "team-prod"}
		with data.imagegate.config.namespaces as overrides
}

test_override_that_is_not_an_object_is_ignored if {
	not settings.override_key with input as {"namespace": "broken"}
		with data.imagegate.config.namespaces as overrides
	settings.config.enforcement == "deny" with input as {"namespace": "broken"}
		with data.imagegate.config.namespaces as overrides
}

test_override_cannot_nest_overrides if {
	settings.config.enforcement == "warn" with input as {"namespace": "sneaky"}
		with data.imagegate.config.namespaces as overrides
}

test_empty_namespace_matches_no_glob if {
	not settings.override_key with input as {"namespace": ""}
		with data.imagegate.config.namespaces as {"*": {"enforcement": "warn"}}
	not settings.override_key with input as {}
		with data.imagegate.config.namespaces as {"*": {"enforcement": "warn"}, "": {"enforcement": "warn"}}
	settings.namespace == "" with input as {"namespace": 42}
}

test_excluded_by_name if {
	settings.excluded with input as {"namespace": "kube-system"}
	not settings.excluded with input as {"namespace": "kube-system-evil"}
	not settings.excluded with input as {"namespace": "default"}
}

test_excluded_by_glob if {
	settings.excluded with input as {"namespace": "sandbox-42"}
		with data.imagegate.config.excludeNamespaces as ["kube-*", "sandbox-??"]
	settings.excluded with input as {"namespace": "kube-public"}
		with data.imagegate.config.excludeNamespaces as ["kube-*", "sandbox-??"]
	not settings.excluded with input as {"namespace": "sandbox-123"}
		with data.imagegate.config.excludeNamespaces as ["kube-*", "sandbox-??"]
	not settings.excluded with input as {"namespace": "my-kube-system"}
		with data.imagegate.config.excludeNamespaces as ["kube-*", "sandbox-??"]
}

test_empty_namespace_is_never_excluded if {
	not settings.excluded with input as {"namespace": ""} with data.imagegate.config.excludeNamespaces as ["*"]
	not settings.excluded with input as {} with data.imagegate.config.excludeNamespaces as ["*", ""]
}

test_overrides_can_exclude if {
	settings.excluded with input as {"namespace": "legacy-app"}
		with data.imagegate.config.namespaces as {"legacy-*": {"excludeNamespaces": ["legacy-*"]}}
}

test_glob_helpers if {
	settings.is_glob("team-*")
	settings.is_glob("team-?")
	settings.is_glob("team-[ab]")
	settings.is_glob("team-{a,b}")
	not settings.is_glob("team-a")
	settings.literals("team-*") == 5
	settings.literals("*-?") == 1
	settings.literals("team-[ab]-*") == 6
	settings.literals("team-{alpha,beta}") == 5
	settings.literals("team-[") == 5
	settings.namespace_matches("team-{a,b}", "team-b")
	not settings.namespace_matches("team-{a,b}", "team-c")
	settings.namespace_matches("team-[ab]", "team-a")
}

test_mirrors_keep_only_string_targets if {
	settings.config.mirrors == {"docker.io": "harbor.example.com/hub"} with data.imagegate.config.mirrors as {
		"docker.io": " harbor.example.com/hub ",
		"ghcr.io": 7,
		"quay.io": "  ",
	}
	settings.config.mirrors == {} with data.imagegate.config.mirrors as ["docker.io"]
}

test_signature_entries_need_sources_and_a_signer_and_keep_their_id if {
	entries := [
		{
			"images": ["a.example.com"], "keys": ["/k.pub"], "id": "v-1",
			"attestations": ["slsaprovenance1", {"type": "https://x", "required": false}, 7],
		},
		{"images": ["b.example.com"], "identities": [{"issuer": "https://i", "subject": "s"}, "junk"], "id": "v-2"},
		{"images": ["c.example.com"], "id": "v-3"},
		{"images": [], "keys": ["/k.pub"], "id": "v-4"},
		{"images": ["d.example.com"], "keys": ["/k.pub"]},
		"not an entry",
	]
	settings.config.signatures == [
		{
			"images": ["a.example.com"], "keys": ["/k.pub"], "identities": [], "id": "v-1",
			"attestations": [{"type": "slsaprovenance1", "required": true}, {"type": "https://x", "required": false}],
		},
		{
			"images": ["b.example.com"], "keys": [],
			"identities": [{"issuer": "https://i", "subject": "s"}], "id": "v-2", "attestations": [],
		},
		{"images": ["d.example.com"], "keys": ["/k.pub"], "identities": [], "id": "", "attestations": []},
	] with input as {"namespace": "default"} with data.imagegate.config.signatures as entries
}

test_malformed_signature_entries_are_left_out_or_emptied if {
	settings.config.signatures == [] with input as {"namespace": "default"}
		with data.imagegate.config.signatures as {"images": ["a.example.com"]}
	emptied := [{"images": ["a.example.com"], "keys": ["/k.pub"], "identities": [], "id": "", "attestations": []}]
	settings.config.signatures == emptied with input as {"namespace": "default"}
		with data.imagegate.config.signatures as [{
			"images": ["a.example.com"], "keys": ["/k.pub"], "identities": "everyone",
			"attestations": "all", "id": 7,
		}]
}

# Namespace overrides replace whole values: a table over every key a namespace may
# override, each with a global value, an override, and (where the feature has one) the
# empty value that turns it off for the namespace.
package imagegate.settings_test

import data.imagegate.settings

# key: {"global": value outside the override, "override": the namespace's, "off": empty}
replace_table := {
	"trustedRegistries": {
		"global": ["registry.example.com", "ghcr.io/acme"],
		"override": ["registry.example.com/teams"],
		"off": [],
	},
	"denyLatest": {"global": true, "override": false, "off": false},
	"pullPolicy": {"global": "Always", "override": "IfNotPresent", "off": null},
	"rewriteRegistry": {"global": "mirror.example.com", "override": "mirror-eu.example.com", "off": null},
	"rewriteMode": {"global": "prepend", "override": "replace"},
	"rewriteIgnore": {"global": ["docker.io", "quay.io"], "override": ["ghcr.io"], "off": []},
	"mirrors": {
		"global": {"docker.io": "harbor.example.com/hub", "ghcr.io": "harbor.example.com/ghcr"},
		"override": {"docker.io": "harbor-eu.example.com/hub"},
		"off": {},
	},
	"imagePullSecret": {"global": "regcred", "override": "eu-regcred", "off": null},
	"imagePullSecretMode": {"global": "append", "override": "replace"},
	"defaultStorageClass": {"global": "standard", "override": "fast", "off": null},
	"enforcement": {"global": "deny", "override": "warn"},
	"breakGlass": {"global": true, "override": false, "off": false},
	"maxImages": {"global": 100, "override": 10},
	"maxLookups": {"global": 64, "override": 8},
	"disallowedTags": {"global": ["dev", "main"], "override": ["edge"], "off": []},
	"requireDigest": {"global": true, "override": false, "off": false},
	"exemptImages": {
		"global": ["registry.example.com/tools/*", "registry.example.com/debug/*"],
		"override": ["registry.example.com/eu/*"],
		"off": [],
	},
	"pinDigests": {"global": "all", "override": "pods", "off": false},
	"signatures": {
		"global": [
			{
				"images": ["registry.example.com/prod"], "keys": ["/keys/release.pub"],
				"identities": [], "id": "v-1", "attestations": [],
			},
			{
				"images": ["ghcr.io/acme"], "keys": [], "id": "v-2",
				"identities": [{"issuer": "https://i", "subject": "s"}],
				"attestations": [{"type": "https://slsa.dev/provenance/v1", "required": true}],
			},
		],
		"override": [{
			"images": ["registry.example.com/eu"], "keys": ["/keys/eu.pub"],
			"identities": [], "id": "v-3", "attestations": [],
		}],
		"off": [],
	},
}

# Top-level only: an override cannot exclude its own namespace's siblings or nest overrides.
not_overridable := {"excludeNamespaces", "namespaces"}

test_the_table_covers_every_overridable_key if {
	object.keys(replace_table) == object.keys(settings.defaults) - not_overridable
}

test_an_override_replaces_the_whole_value_maps_and_lists_included if {
	every key, row in replace_table {
		configured := {key: row.global, "namespaces": {"eu-*": {key: row.override}}}
		settings.config[key] == row.global with input as {"namespace": "us-1"}
			with data.imagegate.config as configured
		settings.config[key] == row.override with input as {"namespace": "eu-1"}
			with data.imagegate.config as configured
	}
}

# The keys whose feature an empty value turns off.
switchable[key] := row.off if {
	some key, row in replace_table
	"off" in object.keys(row)
}

test_an_empty_value_in_an_override_turns_the_feature_off if {
	count(switchable) == 14
	every key, off in switchable {
		configured := {key: replace_table[key].global, "namespaces": {"eu-*": {key: off}}}
		settings.config[key] == off with input as {"namespace": "eu-1"}
			with data.imagegate.config as configured
	}
}

test_an_override_leaves_the_keys_it_does_not_name if {
	configured := {
		"mirrors": {"docker.io": "harbor.example.com/hub"},
		"trustedRegistries": ["harbor.example.com"],
		"namespaces": {"eu-*": {"enforcement": "warn"}},
	}
	c := settings.config with input as {"namespace": "eu-1"} with data.imagegate.config as configured
	c.mirrors == {"docker.io": "harbor.example.com/hub"}
	c.trustedRegistries == ["harbor.example.com"]
	c.enforcement == "warn"
}

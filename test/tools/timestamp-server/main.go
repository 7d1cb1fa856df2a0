// timestamp-server: sigstore/timestamp-authority's RFC 3161 server (its REST API, signer and
// request handling, unchanged) without upstream's command shell, for the Sigstore test bed.
//
// Upstream's `timestamp-server serve` (cmd/timestamp-server/app/serve.go, v2.1.3) always
// starts a Prometheus server on the hard-coded address ":2112" — every interface, no flag to
// move it — and exits (log.Fatalf) when that port is taken. Two beds at once (ava runs tests
// concurrently; other worktrees run theirs) would kill each other's TSA. This main does what
// serve.go does minus that server, pprof and NTP monitoring (which would reach public NTP
// servers): same viper keys, same defaults, pkg/server.NewRestAPIServer, Serve.
//
// Usage: timestamp-server --host 127.0.0.1 --port 3004 [--timestamp-signer memory]
// --version prints the timestamp-authority module version it was built with and its source.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/sigstore/timestamp-authority/v2/pkg/log"
	"github.com/sigstore/timestamp-authority/v2/pkg/server"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

const module = "github.com/sigstore/timestamp-authority/v2"

// source is the digest of this module's files, set by test/e2e/build-sigstore-tools.sh.
var source = "dev"

func main() {
	// --host and --port are the generated REST server's own flags (pkg/generated/restapi),
	// already on pflag.CommandLine, as in upstream's binary.
	flags := pflag.CommandLine
	version := flags.Bool("version", false, "print the timestamp-authority version and exit")
	flags.String("timestamp-signer", "memory", "memory (an ephemeral in-memory CA), file, kms or tink")
	flags.String("timestamp-signer-hash", "sha256", "hash for KMS/Tink signers")
	flags.String("file-signer-key-path", "", "PEM private key (file signer)")
	flags.String("file-signer-passwd", "", "its password")
	flags.String("certificate-chain-path", "", "PEM chain certifying a file/KMS/Tink key")
	flags.Bool("include-chain-in-response", false, "include the issuing chain in responses with certReq")
	flags.Bool("enforce-intermediate-eku", true, "require the timestamping EKU on intermediates")
	flags.Bool("use-http-201", false, "answer 201 Created instead of 200 OK")
	flags.String("default-policy-oid", "1.3.6.1.4.1.57264.2", "policy OID used when a request names none")
	flags.StringSlice("accepted-policy-oids", []string{"1.3.6.1.4.1.57264.2"}, "policy OIDs accepted in requests")
	flags.Bool("allow-custom-extensions", false, "copy custom request extensions into the timestamp")
	flags.Uint64("max-request-body-size", 1048576, "maximum request body in bytes")
	flags.String("log-type", "dev", "dev or prod")
	// Accepted for the command line upstream documents; this main never monitors NTP.
	flags.Bool("disable-ntp-monitoring", true, "no-op: NTP monitoring is never started here")
	pflag.Parse()
	if *version {
		fmt.Println("timestamp-server (imagegate wrapper)", moduleVersion(), source)
		return
	}
	if err := viper.BindPFlags(flags); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	log.ConfigureLogger(viper.GetString("log-type"))
	log.Logger.Infof("starting timestamp-server (%s %s)", module, moduleVersion())

	srv := server.NewRestAPIServer(viper.GetString("host"), viper.GetInt("port"), []string{"http"},
		false, 10*time.Second, 10*time.Second)
	defer func() { _ = srv.Shutdown() }()
	if err := srv.Serve(); err != nil {
		log.Logger.Fatal(err)
	}
}

func moduleVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == module {
				return dep.Version
			}
		}
	}
	return "unknown"
}

// oci-registry: go-containerregistry's registry with the OCI 1.1 referrers API
// (GET /v2/<name>/referrers/<digest>), which the CNCF distribution registry v3 lacks, served
// over HTTPS for the registry tests. Blobs are kept on disk and every accepted manifest write
// is journaled, so a restart on the same --dir has the same content ("registry down, then
// back"): the library keeps manifests only in memory.
//
// The library's referrers answer gives each descriptor its config's media type as
// artifactType, even when the manifest has an artifactType (cosign 3's bundles: the config
// is the empty descriptor), and ignores the artifactType filter. The image spec says
// artifactType is the manifest's, else the config's media type; registries that implement
// the API do that, so this one corrects the answer and applies the filter (reporting it in
// OCI-Filters-Applied) unless --raw-referrers asks for the library's answer as it is.
//
// Usage: oci-registry --address 127.0.0.1:5000 --cert tls.crt --key tls.key --dir DIR
// Prints "serving https://ADDR" on stderr once listening; --version prints the version.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"
)

// source is the digest of this module's files, set by test/e2e/build-registry-tools.sh.
var source = "dev"

// write is one journaled manifest PUT or DELETE, replayed in order at start.
type write struct {
	Method, Path, ContentType string
	Body                      []byte
}

func main() {
	address := flag.String("address", "127.0.0.1:5000", "host:port to listen on")
	cert := flag.String("cert", "", "serving certificate (PEM)")
	key := flag.String("key", "", "serving key (PEM)")
	dir := flag.String("dir", "", "where blobs and the manifest journal are kept")
	raw := flag.Bool("raw-referrers", false, "serve go-containerregistry's referrers answer uncorrected")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println("oci-registry", source)
		return
	}
	if *cert == "" || *key == "" || *dir == "" {
		log.Fatal("oci-registry: --cert, --key and --dir are required")
	}
	blobs := filepath.Join(*dir, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		log.Fatal(err)
	}
	inner := registry.New(registry.WithReferrersSupport(true),
		registry.WithBlobHandler(registry.NewDiskBlobHandler(blobs)))
	journal := filepath.Join(*dir, "manifests.jsonl")
	if err := replay(inner, journal); err != nil {
		log.Fatalf("oci-registry: replaying %s: %v", journal, err)
	}
	out, err := os.OpenFile(journal, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if repo, _, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/referrers/"); ok && !*raw && r.Method == http.MethodGet {
			referrers(inner, repo, w, r)
			return
		}
		if !strings.Contains(r.URL.Path, "/manifests/") || (r.Method != http.MethodPut && r.Method != http.MethodDelete) {
			inner.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		// Journal before answering: a client told 201 finds the manifest after a restart.
		if rec.Code == http.StatusCreated || rec.Code == http.StatusAccepted {
			line, _ := json.Marshal(write{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body})
			if _, err := out.Write(append(line, '\n')); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
	log.Printf("serving https://%s", *address)
	log.Fatal((&http.Server{Addr: *address, Handler: handler}).ListenAndServeTLS(*cert, *key))
}

// referrers answers GET /v2/<repo>/referrers/<digest> with each descriptor's artifactType
// taken from its manifest, filtered by ?artifactType= when given.
func referrers(inner http.Handler, repo string, w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	inner.ServeHTTP(rec, r)
	var index struct {
		SchemaVersion int              `json:"schemaVersion"`
		MediaType     string           `json:"mediaType"`
		Manifests     []map[string]any `json:"manifests"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &index) != nil {
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	want := r.URL.Query().Get("artifactType")
	kept := []map[string]any{}
	for _, desc := range index.Manifests {
		get := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/v2/%s/manifests/%s", repo, desc["digest"]), nil)
		m := httptest.NewRecorder()
		inner.ServeHTTP(m, get)
		var mf struct {
			ArtifactType string `json:"artifactType"`
			Config       struct {
				MediaType string `json:"mediaType"`
			} `json:"config"`
		}
		_ = json.Unmarshal(m.Body.Bytes(), &mf)
		if mf.ArtifactType != "" {
			desc["artifactType"] = mf.ArtifactType
		}
		if want == "" || desc["artifactType"] == want {
			kept = append(kept, desc)
		}
	}
	index.Manifests = kept
	body, _ := json.Marshal(index)
	if want != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func replay(h http.Handler, journal string) error {
	f, err := os.Open(journal)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	lines.Buffer(nil, 64<<20)
	for lines.Scan() {
		var w write
		if err := json.Unmarshal(lines.Bytes(), &w); err != nil {
			return err
		}
		r := httptest.NewRequest(w.Method, w.Path, bytes.NewReader(w.Body))
		r.Header.Set("Content-Type", w.ContentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code >= 300 {
			return fmt.Errorf("%s %s: %d %s", w.Method, w.Path, rec.Code, rec.Body)
		}
	}
	return lines.Err()
}

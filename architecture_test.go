package parley_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportRules holds the package edges of ../shared/ARCHITECTURE.md: the
// rules live in chat and know nothing of GraphQL; go-redis stays inside
// pubsub/redis; GORM queries stay in chat and db; models import nothing of
// ours.
func TestImportRules(t *testing.T) {
	const mod = "github.com/parleychat/parley"
	imports := packageImports(t)
	if !slices.Contains(imports[mod+"/chat"], "gorm.io/gorm") {
		t.Fatalf("go list shows chat without its GORM import: %v", imports[mod+"/chat"])
	}
	forbidden := []struct {
		pkg      string
		prefixes []string
	}{
		{mod + "/chat", []string{mod + "/graph", mod + "/resolvers", mod + "/server"}},
		{mod + "/models", []string{mod + "/"}},
		{mod + "/pubsub", []string{mod + "/chat", mod + "/models", "github.com/redis/go-redis"}},
		{mod + "/pubsub/memory", []string{mod + "/chat", mod + "/models", "github.com/redis/go-redis"}},
		{mod + "/pubsub/redis", []string{mod + "/chat", mod + "/models"}},
		{mod + "/auth", []string{mod + "/chat", mod + "/db", "gorm.io/"}},
		{mod + "/resolvers", []string{"gorm.io/", mod + "/db"}},
		{mod + "/server", []string{"gorm.io/", mod + "/db"}},
	}
	for _, f := range forbidden {
		for _, imp := range imports[f.pkg] {
			for _, p := range f.prefixes {
				if strings.HasPrefix(imp, p) {
					t.Errorf("%s imports %s", f.pkg, imp)
				}
			}
		}
	}
	allowed := map[string]map[string]bool{
		"github.com/redis/go-redis/v9": {mod + "/pubsub/redis": true},
		"gorm.io/gorm":                 {mod + "/chat": true, mod + "/db": true, mod + "/models": true, mod + "/parleytest": true},
	}
	for pkg, imps := range imports {
		for _, imp := range imps {
			if who, ok := allowed[imp]; ok && !who[pkg] {
				t.Errorf("%s imports %s, which only %v may", pkg, imp, keys(who))
			}
		}
	}
}

// packageImports maps each package of the module to its direct imports
// (tests excluded).
func packageImports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return imports
		} else if err != nil {
			t.Fatal(err)
		}
		imports[p.ImportPath] = p.Imports
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Package nomad_test checks the Nomad job: it parses, has the structure
// the deployment relies on, and its config template renders into a
// configuration that the agent accepts.
package nomad_test

import (
	"strings"
	"testing"
	"text/template"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/loghouse/loghouse/pkg/config"
)

const jobFile = "loghouse.nomad.hcl"

func parseJob(t *testing.T) *hclsyntax.Body {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCLFile(jobFile)
	if diags.HasErrors() {
		t.Fatalf("%s does not parse: %v", jobFile, diags)
	}
	return f.Body.(*hclsyntax.Body)
}

// blocks returns the blocks of type typ directly in body.
func blocks(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

func one(t *testing.T, body *hclsyntax.Body, typ string) *hclsyntax.Block {
	t.Helper()
	bs := blocks(body, typ)
	if len(bs) != 1 {
		t.Fatalf("want one %q block, found %d", typ, len(bs))
	}
	return bs[0]
}

// literal evaluates an attribute that needs no variables.
func literal(t *testing.T, body *hclsyntax.Body, name string) string {
	t.Helper()
	a, ok := body.Attributes[name]
	if !ok {
		t.Fatalf("attribute %q missing", name)
	}
	// Nomad keeps ${NOMAD_...} references for runtime interpolation; stand
	// each in for itself.
	vars := map[string]cty.Value{}
	for _, tr := range a.Expr.Variables() {
		if name := tr.RootName(); strings.HasPrefix(name, "NOMAD_") {
			vars[name] = cty.StringVal("${" + name + "}")
		}
	}
	v, diags := a.Expr.Value(&hcl.EvalContext{Variables: vars})
	if diags.HasErrors() {
		t.Fatalf("attribute %q: %v", name, diags)
	}
	if v.Type().FriendlyName() == "number" {
		return v.AsBigFloat().String()
	}
	if v.Type().FriendlyName() == "bool" {
		if v.True() {
			return "true"
		}
		return "false"
	}
	return v.AsString()
}

func TestJobStructure(t *testing.T) {
	job := one(t, parseJob(t), "job")
	if job.Labels[0] != "loghouse" {
		t.Fatalf("job %v", job.Labels)
	}
	update := one(t, job.Body, "update")
	if literal(t, update.Body, "max_parallel") != "1" || literal(t, update.Body, "health_check") != "checks" {
		t.Fatal("a rolling update must replace one healthy server at a time")
	}
	group := one(t, job.Body, "group")
	if _, ok := group.Body.Attributes["count"]; !ok {
		t.Fatal("group has no count")
	}
	c := one(t, group.Body, "constraint")
	if literal(t, c.Body, "operator") != "distinct_hosts" || literal(t, c.Body, "value") != "true" {
		t.Fatal("servers must run on distinct hosts")
	}
	vol := one(t, group.Body, "volume")
	if literal(t, vol.Body, "type") != "host" || literal(t, vol.Body, "read_only") != "false" {
		t.Fatal("the data must live on a writable host volume")
	}
	ports := map[string]string{}
	for _, p := range blocks(one(t, group.Body, "network").Body, "port") {
		ports[p.Labels[0]] = literal(t, p.Body, "static")
	}
	if ports["rpc"] != "8400" || ports["serf"] != "8401" || ports["http"] != "8402" {
		t.Fatalf("ports %v", ports)
	}
	var checked bool
	for _, svc := range blocks(group.Body, "service") {
		if literal(t, svc.Body, "name") != "loghouse" {
			continue
		}
		if literal(t, svc.Body, "port") != "rpc" {
			t.Fatal("the loghouse service must advertise the RPC port")
		}
		chk := one(t, svc.Body, "check")
		// A gRPC or TCP check against the RPC port cannot pass the mTLS
		// handshake; the HTTP health endpoint needs no certificate.
		if literal(t, chk.Body, "type") != "http" || literal(t, chk.Body, "port") != "http" || literal(t, chk.Body, "path") != "/v1/health" {
			t.Fatal("the check must use /v1/health on the HTTP port")
		}
		checked = true
	}
	if !checked {
		t.Fatal("no loghouse service")
	}
	task := one(t, group.Body, "task")
	if literal(t, task.Body, "kill_signal") != "SIGTERM" || literal(t, task.Body, "kill_timeout") == "" {
		t.Fatal("the task must stop gracefully with SIGTERM and a timeout")
	}
	if literal(t, one(t, task.Body, "volume_mount").Body, "destination") != "/var/lib/loghouse" {
		t.Fatal("the volume must be mounted at the data dir")
	}
	one(t, task.Body, "resources")
}

// TestConfigTemplateRenders renders the config template as Nomad would
// (with stand-ins for consul-template's env, service and nomadVar) and
// loads the result with the agent's own config loader, with no instances
// registered yet and with three.
func TestConfigTemplateRenders(t *testing.T) {
	job := one(t, parseJob(t), "job")
	task := one(t, one(t, job.Body, "group").Body, "task")
	var src string
	for _, tb := range blocks(task.Body, "template") {
		if strings.HasSuffix(literal(t, tb.Body, "destination"), "/config.hcl") {
			src = literal(t, tb.Body, "data")
			if literal(t, tb.Body, "change_mode") != "signal" || literal(t, tb.Body, "change_signal") != "SIGHUP" {
				t.Fatal("a re-rendered config must be reloaded with SIGHUP")
			}
		}
	}
	if src == "" {
		t.Fatal("no config.hcl template")
	}
	type instance struct{ Address string }
	env := map[string]string{"node.unique.name": "client-1", "NOMAD_IP_rpc": "10.0.0.1", "NOMAD_PORT_rpc": "8400", "NOMAD_PORT_serf": "8401", "NOMAD_PORT_http": "8402"}
	for _, registered := range [][]instance{nil, {{"10.0.0.1"}, {"10.0.0.2"}, {"10.0.0.3"}}} {
		tmpl, err := template.New("config").Funcs(template.FuncMap{
			"env": func(k string) string { return env[k] },
			"service": func(name string) []instance {
				if name != "loghouse|any" {
					t.Errorf("retry_join should list every registered instance, healthy or not (none is healthy before the cluster forms), not %q", name)
				}
				return registered
			},
		}).Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if err := tmpl.Execute(&out, nil); err != nil {
			t.Fatal(err)
		}
		cfg := config.Default()
		if err := cfg.LoadBytes("rendered-config.hcl", []byte(out.String())); err != nil {
			t.Fatalf("rendered config does not load: %v\n%s", err, out.String())
		}
		if err := cfg.Validate(false); err != nil {
			t.Fatalf("rendered config is invalid: %v\n%s", err, out.String())
		}
		if cfg.NodeName != "client-1" || cfg.AdvertiseAddr != "10.0.0.1" || cfg.BootstrapExpect != 3 || len(cfg.RetryJoin) != len(registered) {
			t.Fatalf("rendered %+v", cfg)
		}
	}
}

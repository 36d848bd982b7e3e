package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"sluice/internal/testbin"
)

// manifests decodes every document of deploy/kubernetes/*.yaml strictly
// into its k8s.io/api type: an unknown or misspelt field, a duplicate
// key or a value of the wrong type fails, as kubectl apply
// --validate=strict would.
func manifests(t *testing.T) (sets []*appsv1.StatefulSet, svcs []*corev1.Service, pdbs []*policyv1.PodDisruptionBudget) {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
			var meta struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			var obj any
			switch meta.APIVersion + " " + meta.Kind {
			case "apps/v1 StatefulSet":
				s := &appsv1.StatefulSet{}
				sets, obj = append(sets, s), s
			case "v1 Service":
				s := &corev1.Service{}
				svcs, obj = append(svcs, s), s
			case "policy/v1 PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				pdbs, obj = append(pdbs, p), p
			case " ":
				continue // comments only
			default:
				t.Fatalf("%s document %d: %s %s has no check here; add its type", f, i+1, meta.APIVersion, meta.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i+1, meta.Kind, err)
			}
		}
	}
	return sets, svcs, pdbs
}

// The strict decoding refuses a misspelt field: the check the manifests'
// test relies on.
func TestStrictDecodingRefusesAMisspeltField(t *testing.T) {
	doc := "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {maxUnavailabel: 1}\n"
	if err := yaml.UnmarshalStrict([]byte(doc), &policyv1.PodDisruptionBudget{}); err == nil || !strings.Contains(err.Error(), "maxUnavailabel") {
		t.Fatalf("misspelt field decoded: %v", err)
	}
}

// The manifests are three gates forming one JetStream cluster: stable
// route names through a headless Service, parallel start, a disruption
// budget that keeps the quorum, readiness on /readyz, a preStop before
// the drain, Prometheus annotations, a public Service; every flag they
// pass is one sluice serve has.
func TestKubernetesManifests(t *testing.T) {
	sets, svcs, pdbs := manifests(t)
	if len(sets) != 1 || len(pdbs) != 1 || len(svcs) != 2 {
		t.Fatalf("%d StatefulSets, %d Services, %d PodDisruptionBudgets; want 1, 2, 1", len(sets), len(svcs), len(pdbs))
	}
	ss := sets[0]
	pod := ss.Spec.Template
	podLabels := labels.Set(pod.Labels)
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 || ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("StatefulSet: replicas %v, pod management %q; want 3, Parallel", ss.Spec.Replicas, ss.Spec.PodManagementPolicy)
	}
	sel, err := metav1LabelSelector(ss.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("StatefulSet selector %v does not select its pods %v", ss.Spec.Selector, pod.Labels)
	}
	var headless, public *corev1.Service
	for _, s := range svcs {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s does not select the gates", s.Name)
		}
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			headless = s
		} else {
			public = s
		}
	}
	if headless == nil || headless.Name != ss.Spec.ServiceName || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("the StatefulSet's serviceName %q must be a headless Service publishing not-ready addresses", ss.Spec.ServiceName)
	}
	if public == nil || len(public.Spec.Ports) != 1 || public.Spec.Ports[0].TargetPort.String() != "api" {
		t.Fatalf("the public Service must send one port to the gates' api port")
	}
	pdbSel, err := metav1LabelSelector(pdbs[0].Spec.Selector)
	if err != nil || !pdbSel.Matches(podLabels) || pdbs[0].Spec.MaxUnavailable == nil || pdbs[0].Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget: must select the gates with maxUnavailable 1")
	}
	for k, v := range map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9464", "prometheus.io/path": "/metrics"} {
		if pod.Annotations[k] != v {
			t.Errorf("pod annotation %s = %q, want %q", k, pod.Annotations[k], v)
		}
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["api"] != 8080 || ports["ops"] != 9464 || ports["routes"] != 6222 {
		t.Errorf("container ports %v; want api 8080, ops 9464, routes 6222", ports)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "ops" {
		t.Errorf("readiness probe %+v, want GET /readyz on ops", p)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		t.Errorf("no preStop hook")
	} else if s := c.Lifecycle.PreStop.Sleep; s != nil && pod.Spec.TerminationGracePeriodSeconds != nil &&
		*pod.Spec.TerminationGracePeriodSeconds < s.Seconds+30 {
		t.Errorf("terminationGracePeriodSeconds %d leaves the drain less than its 30 s after the preStop's %d s",
			*pod.Spec.TerminationGracePeriodSeconds, s.Seconds)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || pod.Spec.SecurityContext.RunAsNonRoot == nil || !*pod.Spec.SecurityContext.RunAsNonRoot {
		t.Errorf("the gate must run as non-root on a read-only root filesystem")
	}

	// The routes name every pod by its stable name.
	args := strings.Join(c.Args, " ")
	for i := range int(*ss.Spec.Replicas) {
		route := "nats://" + ss.Name + "-" + string(rune('0'+i)) + "." + headless.Name + ":6222"
		if !strings.Contains(args, route) {
			t.Errorf("--cluster-routes lacks %s", route)
		}
	}
	if !strings.Contains(args, "--replicas=3") {
		t.Errorf("args %q: want --replicas=3", args)
	}
	// Every flag is one sluice serve has, every SLUICE_ variable one of
	// its flags.
	help := serveHelp(t)
	for _, a := range c.Args[1:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.Contains(help, "\n  -"+name+" ") && !strings.Contains(help, "\n  -"+name+"\n") {
			t.Errorf("sluice serve has no flag --%s", name)
		}
	}
	for _, e := range c.Env {
		if name, ok := strings.CutPrefix(e.Name, "SLUICE_"); ok {
			flag := strings.ReplaceAll(strings.ToLower(name), "_", "-")
			if !strings.Contains(help, "\n  -"+flag+" ") {
				t.Errorf("%s names no flag of sluice serve (--%s)", e.Name, flag)
			}
		}
	}
}

// sluiceBinary is the sluice binary every package's tests share.
func sluiceBinary(t *testing.T) string {
	t.Helper()
	return testbin.Path(t)
}

func serveHelp(t *testing.T) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(sluiceBinary(t), "serve", "--help")
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	return out.String()
}

func metav1LabelSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(s)
}

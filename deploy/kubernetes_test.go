package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"sluice/internal/testkit/testbin"
)

// manifests decodes every document of deploy/kubernetes/*.yaml strictly
// into its k8s.io/api type: an unknown or misspelt field, a duplicate
// key or a value of the wrong type fails, as kubectl apply
// --validate=strict would.
func manifests(t *testing.T) (sets []*appsv1.StatefulSet, svcs []*corev1.Service, pdbs []*policyv1.PodDisruptionBudget, nps []*networkingv1.NetworkPolicy) {
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
			case "networking.k8s.io/v1 NetworkPolicy":
				p := &networkingv1.NetworkPolicy{}
				nps, obj = append(nps, p), p
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
	return sets, svcs, pdbs, nps
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
	sets, svcs, pdbs, nps := manifests(t)
	if len(sets) != 1 || len(pdbs) != 1 || len(svcs) != 2 || len(nps) != 1 {
		t.Fatalf("%d StatefulSets, %d Services, %d PodDisruptionBudgets, %d NetworkPolicies; want 1, 2, 1, 1", len(sets), len(svcs), len(pdbs), len(nps))
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

// What a Kubernetes operator expects of the gates' pods, beyond fitting
// together: a Go memory limit below the container's, the three JetStream
// peers on three nodes and spread over zones, a pinned image pulled once,
// and a NetworkPolicy that opens the ops port (the admin API, in clear
// text) to Prometheus alone and the routes to the peers alone.
func TestKubernetesManifestsAsAnOperatorExpects(t *testing.T) {
	sets, _, _, nps := manifests(t)
	if len(sets) != 1 || len(nps) != 1 {
		t.Fatalf("%d StatefulSets, %d NetworkPolicies; want 1, 1", len(sets), len(nps))
	}
	pod := sets[0].Spec.Template
	podLabels := labels.Set(pod.Labels)
	c := pod.Spec.Containers[0]

	t.Run("GOMEMLIMIT below the memory limit", func(t *testing.T) {
		limit, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			t.Fatal("no memory limit")
		}
		var env *corev1.EnvVar
		for i := range c.Env {
			if c.Env[i].Name == "GOMEMLIMIT" {
				env = &c.Env[i]
			}
		}
		if env == nil || env.ValueFrom != nil {
			// resourceFieldRef gives the whole limit, and its divisor
			// only a unit: it cannot say 90%.
			t.Fatalf("GOMEMLIMIT %+v: want a value set below limits.memory", env)
		}
		goLimit, err := parseGoMemLimit(env.Value)
		if err != nil {
			t.Fatal(err)
		}
		if ratio := float64(goLimit) / float64(limit.Value()); ratio < 0.8 || ratio > 0.95 {
			t.Fatalf("GOMEMLIMIT %s is %.0f%% of limits.memory %s; want 80-95%%", env.Value, 100*ratio, limit.String())
		}
	})

	t.Run("the peers on three nodes, spread over zones", func(t *testing.T) {
		spread := map[string]corev1.TopologySpreadConstraint{}
		for _, tsc := range pod.Spec.TopologySpreadConstraints {
			sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
			if err != nil || !sel.Matches(podLabels) {
				t.Errorf("spread by %s does not count the gates", tsc.TopologyKey)
			}
			spread[tsc.TopologyKey] = tsc
		}
		if h, ok := spread["kubernetes.io/hostname"]; !ok || h.MaxSkew != 1 || h.WhenUnsatisfiable != corev1.DoNotSchedule {
			t.Errorf("spread by hostname %+v: want maxSkew 1, DoNotSchedule", h)
		}
		if z, ok := spread["topology.kubernetes.io/zone"]; !ok || z.MaxSkew != 1 {
			t.Errorf("spread by zone %+v: want maxSkew 1", z)
		}
		a := pod.Spec.Affinity
		if a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
			t.Fatal("no required pod anti-affinity")
		}
		term := a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0]
		sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
		if term.TopologyKey != "kubernetes.io/hostname" || err != nil || !sel.Matches(podLabels) {
			t.Errorf("anti-affinity %+v: want the gates kept off each other's node", term)
		}
	})

	t.Run("a pinned image pulled once", func(t *testing.T) {
		tag := ""
		if i := strings.LastIndex(c.Image, ":"); i > strings.LastIndex(c.Image, "/") {
			tag = c.Image[i+1:]
		}
		if !strings.Contains(c.Image, "@sha256:") && (tag == "" || tag == "latest") {
			t.Errorf("image %q: want a version tag or a digest, not :latest", c.Image)
		}
		if c.ImagePullPolicy != corev1.PullIfNotPresent {
			t.Errorf("imagePullPolicy %q, want IfNotPresent", c.ImagePullPolicy)
		}
	})

	t.Run("the NetworkPolicy", func(t *testing.T) {
		np := nps[0]
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(podLabels) {
			t.Fatalf("the NetworkPolicy does not select the gates")
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			t.Fatalf("policy types %v: want Ingress", np.Spec.PolicyTypes)
		}
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		gate := peer{ns: "shop", nsLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}, labels: pod.Labels}
		prometheus := peer{ns: "monitoring", nsLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"},
			labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
		grafana := peer{ns: "monitoring", nsLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"},
			labels: map[string]string{"app.kubernetes.io/name": "grafana"}}
		shopPod := peer{ns: "shop", nsLabels: map[string]string{"kubernetes.io/metadata.name": "shop"},
			labels: map[string]string{"app.kubernetes.io/name": "shop"}}
		outside := peer{ns: "elsewhere", nsLabels: map[string]string{"kubernetes.io/metadata.name": "elsewhere"}, external: true}
		for _, tc := range []struct {
			who  string
			from peer
			port string
			want bool
		}{
			{"a buyer, to the public API", outside, "api", true},
			{"a pod of the shop, to the public API", shopPod, "api", true},
			{"Prometheus, to ops", prometheus, "ops", true},
			{"a peer, to the routes", gate, "routes", true},
			{"a buyer, to ops (the admin API)", outside, "ops", false},
			{"a pod of the gates' namespace, to ops", shopPod, "ops", false},
			{"another pod of the monitoring namespace, to ops", grafana, "ops", false},
			{"a buyer, to the routes", outside, "routes", false},
			{"a pod of the gates' namespace, to the routes", shopPod, "routes", false},
			{"Prometheus, to the routes", prometheus, "routes", false},
			{"a buyer, to NATS clients' 4222", outside, "4222", false},
			{"a peer, to NATS clients' 4222", gate, "4222", false},
		} {
			if got := allows(np, "shop", tc.from, tc.port, ports); got != tc.want {
				t.Errorf("%s: allowed %v, want %v", tc.who, got, tc.want)
			}
		}
	})
}

// peer is a source of traffic for allows: a pod (its namespace and
// labels) or an address outside the cluster.
type peer struct {
	ns       string
	nsLabels map[string]string
	labels   map[string]string
	external bool
}

// allows evaluates an ingress NetworkPolicy as the API defines it: a rule
// without from admits every source, a from entry's podSelector alone
// means pods of the policy's namespace, with a namespaceSelector pods of
// the namespaces it selects; a rule without ports admits every port; a
// named port is the container port of that name.
func allows(np *networkingv1.NetworkPolicy, ns string, from peer, port string, ports map[string]int32) bool {
	for _, r := range np.Spec.Ingress {
		if !portMatches(r.Ports, port, ports) {
			continue
		}
		if len(r.From) == 0 {
			return true
		}
		for _, f := range r.From {
			if f.IPBlock != nil {
				continue // no address rules here: none is expected
			}
			if from.external {
				continue
			}
			nsOK := from.ns == ns
			if f.NamespaceSelector != nil {
				sel, err := metav1.LabelSelectorAsSelector(f.NamespaceSelector)
				nsOK = err == nil && sel.Matches(labels.Set(from.nsLabels))
			}
			podOK := true
			if f.PodSelector != nil {
				sel, err := metav1.LabelSelectorAsSelector(f.PodSelector)
				podOK = err == nil && sel.Matches(labels.Set(from.labels))
			}
			if nsOK && podOK {
				return true
			}
		}
	}
	return false
}

func portMatches(rule []networkingv1.NetworkPolicyPort, port string, ports map[string]int32) bool {
	if len(rule) == 0 {
		return true
	}
	for _, p := range rule {
		if p.Port == nil {
			return true
		}
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		switch {
		case p.Port.Type == intstr.String && p.Port.StrVal == port:
			return true
		case p.Port.Type == intstr.Int && (strconv.Itoa(int(p.Port.IntVal)) == port || ports[port] == p.Port.IntVal):
			return true
		}
	}
	return false
}

// parseGoMemLimit reads GOMEMLIMIT as the Go runtime does: a number of
// bytes with an optional unit B, KiB, MiB, GiB or TiB.
func parseGoMemLimit(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = n, u.mult
			break
		}
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Value() <= 0 || strings.ContainsAny(v, "kKMGTPEi.") {
		return 0, fmt.Errorf("GOMEMLIMIT %q is not a Go memory limit", v)
	}
	return q.Value() * mult, nil
}

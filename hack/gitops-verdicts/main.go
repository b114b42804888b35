// Command gitops-verdicts reads objects as JSON, one per line on stdin, and prints for each the
// verdict of kstatus (sigs.k8s.io/cli-utils pkg/kstatus, what Flux and the cli-utils appliers
// read) and of Argo CD with the health script given as its argument, as "kstatus<TAB>argo".
// tests/gitops_health.rs runs it on the statuses of the operator's own status builder;
// build.sh builds it.
//
//	gitops-verdicts deploy/argocd/health.lua < objects.jsonl
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gitops-verdicts HEALTH_LUA < objects.jsonl")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for n := 1; in.Scan(); n++ {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(in.Bytes()); err != nil {
			fail(fmt.Errorf("line %d: %w", n, err))
		}
		k, err := status.Compute(obj)
		if err != nil {
			fail(fmt.Errorf("line %d: kstatus: %w", n, err))
		}
		a, err := argoHealth(obj, string(script))
		if err != nil {
			fail(fmt.Errorf("line %d: argo: %w", n, err))
		}
		fmt.Fprintf(out, "%s\t%s\n", k.Status, a.Status)
	}
	if err := in.Err(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gitops-verdicts:", err)
	os.Exit(1)
}

// The rest is how Argo CD computes a resource's health with a health script, copied from
// Argo CD v3.6.0 (github.com/argoproj/argo-cd at commit 37ee0097cf85): the order of
// gitops-engine/pkg/health/health.go GetResourceHealth (an object being deleted is
// "Progressing: Pending deletion" before any check), and util/lua/lua.go runLua and
// ExecuteHealthLua (the libraries a script gets without useOpenLibs, the object as the global
// `obj`, a one-second limit, the result read through JSON and its status validated).

type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

const hookFinalizer = "argocd.argoproj.io/hook-finalizer"

func argoHealth(obj *unstructured.Unstructured, script string) (*healthStatus, error) {
	if obj.GetDeletionTimestamp() != nil && !slices.Contains(obj.GetFinalizers(), hookFinalizer) {
		return &healthStatus{Status: "Progressing", Message: "Pending deletion"}, nil
	}
	return executeHealthLua(obj, script)
}

func runLua(obj *unstructured.Unstructured, script string) (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			return nil, err
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)
	ctx, cancel := context.WithTimeout(context.Background(), 1*time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", decodeValue(l, obj.Object))
	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	return l, err
}

func executeHealthLua(obj *unstructured.Unstructured, script string) (*healthStatus, error) {
	l, err := runLua(obj, script)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	returnValue := l.Get(-1)
	switch returnValue.Type() {
	case lua.LTTable:
		jsonBytes, err := luajson.Encode(returnValue)
		if err != nil {
			return nil, err
		}
		hs := &healthStatus{}
		if err := json.Unmarshal(jsonBytes, hs); err != nil {
			typeError := &json.UnmarshalTypeError{Value: "array", Type: reflect.TypeFor[*healthStatus]()}
			if errors.As(err, &typeError) {
				return &healthStatus{}, nil
			}
			return nil, err
		}
		switch hs.Status {
		case "Unknown", "Progressing", "Suspended", "Healthy", "Degraded", "Missing":
			return hs, nil
		}
		return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	case lua.LTNil:
		return &healthStatus{}, nil
	}
	return nil, fmt.Errorf("expect table output from Lua script, not %s", returnValue.Type())
}

func decodeValue(l *lua.LState, value any) lua.LValue {
	switch converted := value.(type) {
	case bool:
		return lua.LBool(converted)
	case float64, int, int32, int64:
		// Argo CD converts each of these to a Lua number in a case of its own.
		return lua.LNumber(reflect.ValueOf(converted).Convert(reflect.TypeFor[float64]()).Float())
	case string:
		return lua.LString(converted)
	case json.Number:
		return lua.LString(converted)
	case []any:
		arr := l.CreateTable(len(converted), 0)
		for _, item := range converted {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(converted))
		for key, item := range converted {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	case nil:
		return lua.LNil
	}
	return lua.LNil
}

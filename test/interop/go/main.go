// Command kms-interop runs the interop scenario (test/interop/scenario.ts, as JSON on
// stdin; classicCases for the classic SDK) with the current Go SDK (alibabacloud-go/kms-20160120/v3, signature V3) and the
// classic one (aliyun/alibaba-cloud-sdk-go/services/kms, signature v1.0, what
// ack-kms-plugin uses), and prints {"current": results, "classic": results}.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/alibabacloud-go/tea/tea"
)

type step struct {
	Name   string                 `json:"name"`
	Action string                 `json:"action"`
	Params map[string]interface{} `json:"params"`
	As     string                 `json:"as"`
	Admin  *struct {
		Method string      `json:"method"`
		Path   string      `json:"path"`
		Body   interface{} `json:"body"`
	} `json:"admin"`
}

type input struct {
	URL             string `json:"url"`
	Endpoint        string `json:"endpoint"`
	RegionID        string `json:"regionId"`
	AccessKeyID     string `json:"accessKeyId"`
	AccessKeySecret string `json:"accessKeySecret"`
	Cases           []step `json:"cases"`
	ClassicCases    []step `json:"classicCases"`
}

type result struct {
	Ok      bool                   `json:"ok"`
	Value   map[string]interface{} `json:"value,omitempty"`
	Code    string                 `json:"code,omitempty"`
	Status  *int                   `json:"status"`
	Message string                 `json:"message,omitempty"`
}

// caller signs with one access key pair and returns the response body as a map.
type caller func(action string, params map[string]interface{}) (map[string]interface{}, error)

// credentialsFor gives the access key pair a case asks for.
func credentialsFor(in input, as string) (string, string) {
	switch as {
	case "wrongSecret":
		return in.AccessKeyID, "wrong"
	case "unknownKey":
		return "LTAInobody", in.AccessKeySecret
	}
	return in.AccessKeyID, in.AccessKeySecret
}

var reference = regexp.MustCompile(`^\{\{([^.]+)\.(.+)\}\}$`)

func resolve(results map[string]result, value interface{}) interface{} {
	switch v := value.(type) {
	case map[string]interface{}:
		out := map[string]interface{}{}
		for name, inner := range v {
			out[name] = resolve(results, inner)
		}
		return out
	case string:
		match := reference.FindStringSubmatch(v)
		if match == nil {
			return v
		}
		var found interface{} = results[match[1]].Value
		for _, part := range strings.Split(match[2], ".") {
			object, _ := found.(map[string]interface{})
			found = object[part]
		}
		if text, ok := found.(string); ok {
			return text
		}
		return "unresolved"
	}
	return value
}

func admin(in input, method, path string, body interface{}) error {
	data, _ := json.Marshal(body)
	req, err := http.NewRequest(method, in.URL+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("content-type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	return res.Body.Close()
}

// errorOf reads the code and HTTP status out of either SDK's error.
func errorOf(err error) result {
	out := result{Message: err.Error()}
	var current interface {
		GetCode() *string
		GetStatusCode() *int
	}
	var classic interface {
		ErrorCode() string
		HttpStatus() int
	}
	var sdkError *tea.SDKError
	switch {
	case errors.As(err, &sdkError):
		out.Code, out.Status = tea.StringValue(sdkError.Code), sdkError.StatusCode
	case errors.As(err, &current):
		if code := current.GetCode(); code != nil {
			out.Code = *code
		}
		out.Status = current.GetStatusCode()
	case errors.As(err, &classic):
		status := classic.HttpStatus()
		out.Code, out.Status = classic.ErrorCode(), &status
	default:
		out.Code = reflect.TypeOf(err).String()
	}
	if len(out.Message) > 300 {
		out.Message = out.Message[:300]
	}
	return out
}

func run(in input, cases []step, callers map[string]caller) map[string]result {
	results := map[string]result{}
	for _, c := range cases {
		if c.Admin != nil {
			if err := admin(in, c.Admin.Method, c.Admin.Path, c.Admin.Body); err != nil {
				fmt.Fprintln(os.Stderr, "admin call failed:", err)
				os.Exit(1)
			}
		}
		params, _ := resolve(results, c.Params).(map[string]interface{})
		value, err := callers[c.As](c.Action, params)
		if err != nil {
			results[c.Name] = errorOf(err)
		} else {
			results[c.Name] = result{Ok: true, Value: value}
		}
	}
	return results
}

func callersOf(in input, build func(ak, secret string) caller) map[string]caller {
	callers := map[string]caller{}
	for _, as := range []string{"", "wrongSecret", "unknownKey"} {
		callers[as] = build(credentialsFor(in, as))
	}
	return callers
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "reading the scenario:", err)
		os.Exit(1)
	}
	out := map[string]map[string]result{
		"current": run(in, in.Cases, callersOf(in, func(ak, secret string) caller { return currentCaller(in, ak, secret) })),
		"classic": run(in, in.ClassicCases, callersOf(in, func(ak, secret string) caller { return classicCaller(in, ak, secret) })),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}

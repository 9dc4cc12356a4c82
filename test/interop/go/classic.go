package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	classic "github.com/aliyun/alibaba-cloud-sdk-go/services/kms"
)

// The classic SDK's request constructors (Go cannot look functions up by name).
var classicRequests = map[string]func() requests.AcsRequest{
	"CreateKey":            func() requests.AcsRequest { return classic.CreateCreateKeyRequest() },
	"DescribeKey":          func() requests.AcsRequest { return classic.CreateDescribeKeyRequest() },
	"ListKeys":             func() requests.AcsRequest { return classic.CreateListKeysRequest() },
	"EnableKey":            func() requests.AcsRequest { return classic.CreateEnableKeyRequest() },
	"DisableKey":           func() requests.AcsRequest { return classic.CreateDisableKeyRequest() },
	"ScheduleKeyDeletion":  func() requests.AcsRequest { return classic.CreateScheduleKeyDeletionRequest() },
	"CancelKeyDeletion":    func() requests.AcsRequest { return classic.CreateCancelKeyDeletionRequest() },
	"CreateKeyVersion":     func() requests.AcsRequest { return classic.CreateCreateKeyVersionRequest() },
	"ListKeyVersions":      func() requests.AcsRequest { return classic.CreateListKeyVersionsRequest() },
	"DescribeKeyVersion":   func() requests.AcsRequest { return classic.CreateDescribeKeyVersionRequest() },
	"UpdateRotationPolicy": func() requests.AcsRequest { return classic.CreateUpdateRotationPolicyRequest() },
	"CreateAlias":          func() requests.AcsRequest { return classic.CreateCreateAliasRequest() },
	"ListAliases":          func() requests.AcsRequest { return classic.CreateListAliasesRequest() },
	"Encrypt":              func() requests.AcsRequest { return classic.CreateEncryptRequest() },
	"Decrypt":              func() requests.AcsRequest { return classic.CreateDecryptRequest() },
	"GenerateDataKey":      func() requests.AcsRequest { return classic.CreateGenerateDataKeyRequest() },
}

// classicText is how the classic SDK takes every parameter: a string (maps as JSON).
func classicText(value interface{}) string {
	switch v := value.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	data, _ := json.Marshal(value)
	return string(data)
}

func classicCaller(in input, ak, secret string) caller {
	config := sdk.NewConfig().WithAutoRetry(false).WithMaxRetryTime(0)
	client, err := classic.NewClientWithOptions(in.RegionID, config, credentials.NewAccessKeyCredential(ak, secret))
	return func(action string, params map[string]interface{}) (map[string]interface{}, error) {
		if err != nil {
			return nil, err
		}
		request := classicRequests[action]()
		request.SetDomain(in.Endpoint)
		request.SetScheme("http")
		fields := reflect.ValueOf(request).Elem()
		for name, value := range params {
			field := fields.FieldByName(name)
			if !field.IsValid() {
				return nil, fmt.Errorf("%s has no parameter %s", action, name)
			}
			field.SetString(classicText(value))
		}
		out := reflect.ValueOf(client).MethodByName(action).Call([]reflect.Value{reflect.ValueOf(request)})
		if callErr, _ := out[1].Interface().(error); callErr != nil {
			return nil, callErr
		}
		response := out[0].Interface().(interface{ GetHttpContentString() string })
		value := map[string]interface{}{}
		return value, json.Unmarshal([]byte(response.GetHttpContentString()), &value)
	}
}

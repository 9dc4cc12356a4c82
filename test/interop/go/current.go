package main

import (
	"encoding/json"
	"fmt"
	"reflect"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
)

// currentCaller calls client.<Action>(&kms.<Action>Request{…}) of the current SDK; the
// request is filled from the scenario's parameters through the SDK's own JSON names.
func currentCaller(in input, ak, secret string) caller {
	client, err := kms.NewClient(&openapi.Config{
		AccessKeyId:     tea.String(ak),
		AccessKeySecret: tea.String(secret),
		Endpoint:        tea.String(in.Endpoint),
		Protocol:        tea.String("http"),
		RegionId:        tea.String(in.RegionID),
	})
	return func(action string, params map[string]interface{}) (map[string]interface{}, error) {
		if err != nil {
			return nil, err
		}
		method := reflect.ValueOf(client).MethodByName(action)
		if !method.IsValid() {
			return nil, fmt.Errorf("the SDK has no %s", action)
		}
		request := reflect.New(method.Type().In(0).Elem())
		data, _ := json.Marshal(params)
		if err := json.Unmarshal(data, request.Interface()); err != nil {
			return nil, err
		}
		out := method.Call([]reflect.Value{request})
		if callErr, _ := out[1].Interface().(error); callErr != nil {
			return nil, callErr
		}
		body := out[0].Elem().FieldByName("Body").Interface()
		return toMap(body)
	}
}

func toMap(body interface{}) (map[string]interface{}, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	value := map[string]interface{}{}
	return value, json.Unmarshal(data, &value)
}

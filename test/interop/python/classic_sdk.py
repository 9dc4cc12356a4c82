"""The classic Python SDK (aliyun-python-sdk-kms + aliyun-python-sdk-core, signature v1.0)."""
import importlib
import json

from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.utils import parameter_helper
from aliyunsdkcore.vendored.requests import Session as HttpClient

import cases


def client_for(config, ak=None, secret=None):
    return AcsClient(ak or config["accessKeyId"], secret or config["accessKeySecret"],
                     config["regionId"], auto_retry=False, max_retry_time=0)


def as_text(value):
    """The classic SDK takes every parameter as a string; maps go as JSON."""
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, dict) else str(value)


def caller(config, client, method="POST"):
    def call(action, params):
        module = importlib.import_module("aliyunsdkkms.request.v20160120." + action + "Request")
        request = getattr(module, action + "Request")()
        request.set_endpoint(config["endpoint"])
        request.set_protocol_type("http")
        request.set_method(method)
        request.set_accept_format("JSON")
        for name, value in params.items():
            getattr(request, "set_" + name)(as_text(value))
        return json.loads(client.do_action_with_exception(request))
    return call


def error_of(error):
    if isinstance(error, ServerException):
        return error.get_error_code(), error.get_http_status()
    if isinstance(error, ClientException):
        return error.get_error_code(), None
    return type(error).__name__, None


def main():
    config = cases.read_config()
    run = cases.Runner(error_of)
    cases.run_scenario(run, config, {
        None: caller(config, client_for(config)),
        "wrongSecret": caller(config, client_for(config, secret="wrong")),
        "unknownKey": caller(config, client_for(config, ak="LTAInobody")),
    })
    same = lambda fn: fn  # noqa: E731 (module functions need no staticmethod)
    cases.signature_attacks(run, caller(config, client_for(config)), config["keyId"], {
        "transport": HttpClient,
        "nonce": (parameter_helper, "get_uuid", same),
        "clock": (parameter_helper, "get_iso_8061_date", same),
    })
    get = caller(config, client_for(config), "GET")
    run.case("GET", lambda: get("DescribeKey", {"KeyId": config["keyId"]})["KeyMetadata"])
    cases.emit(run)


if __name__ == "__main__":
    main()

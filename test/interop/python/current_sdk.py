"""The current Python SDK (alibabacloud-kms20160120, signature V3) against the emulator."""
import re

from requests import Session as HttpClient
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_openapi.utils import Utils

import cases


def snake(action):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def client_for(config, **overrides):
    settings = {
        "access_key_id": config["accessKeyId"],
        "access_key_secret": config["accessKeySecret"],
        "endpoint": config["endpoint"],
        "protocol": "http",
        "region_id": config["regionId"],
    }
    settings.update(overrides)
    return Client(Config(**settings))


def caller(client):
    def call(action, params):
        request = getattr(models, action + "Request")().from_map(params)
        return getattr(client, snake(action))(request).body.to_map()
    return call


def error_of(error):
    return getattr(error, "code", type(error).__name__), getattr(error, "status_code", None)


def v3_only(run, config, key):
    """What only V3 signs: the body hash, and the STS token header."""
    call = caller(client_for(config))
    original_send = HttpClient.send

    def tamper_body(client, prepared, **kwargs):
        prepared.body = (prepared.body or "") + "&Extra=1"
        prepared.headers["content-length"] = str(len(prepared.body))
        prepared.headers["content-type"] = "application/x-www-form-urlencoded"
        return original_send(client, prepared, **kwargs)

    with cases.patched(HttpClient, "send", tamper_body):
        run.case("tampered body", lambda: call("DescribeKey", {"KeyId": key}))
    sts = config["sts"]
    for name, token in (("STS token", sts["securityToken"]), ("wrong STS token", "not-it")):
        sts_call = caller(client_for(config, access_key_id=sts["id"],
                                     access_key_secret=sts["secret"], security_token=token))
        run.case(name, lambda: sts_call("DescribeKey", {"KeyId": key})["KeyMetadata"])


def main():
    config = cases.read_config()
    run = cases.Runner(error_of)
    cases.run_scenario(run, config, {
        None: caller(client_for(config)),
        "wrongSecret": caller(client_for(config, access_key_secret="wrong")),
        "unknownKey": caller(client_for(config, access_key_id="LTAInobody")),
    })
    cases.signature_attacks(run, caller(client_for(config)), config["keyId"], {
        "transport": HttpClient,
        "nonce": (Utils, "get_nonce", staticmethod),
        "clock": (Utils, "get_timestamp", staticmethod),
    })
    v3_only(run, config, config["keyId"])
    cases.emit(run)


if __name__ == "__main__":
    main()

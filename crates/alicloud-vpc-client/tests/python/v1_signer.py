"""Signs RPC parameter sets with the official Python SDK core (aliyun-python-sdk-core), for
tests/cloud_signature_crosscheck.rs.

Input (stdin, JSON): {"cases": [case, ...]} where a case is either
  {"mode": "sdk", "method": M, "ak": ID, "secret": S, "query": {...}, "body": {...}}
      -> the SDK adds its own common parameters (Timestamp, SignatureNonce, ...) and signs
         query + body exactly as it does for a real request (get_signed_url);
  {"mode": "verify", "method": M, "secret": S, "params": {...}}
      -> the SDK's string-to-sign and signature over a complete parameter set built elsewhere.
Output (stdout, JSON): {"results": [{"params": {...}, "string_to_sign": T, "signature": SIG}, ...]}
where "params" is the signed query set (sdk mode; includes "Signature").

One process handles every case, so hundreds of cases cost one interpreter start.
"""

import json
import sys

from aliyunsdkcore.auth.algorithm import sha_hmac1
from aliyunsdkcore.auth.composer import rpc_signature_composer as rpc

# Module-private helpers of the composer (module-level double-underscore names are not mangled).
_compose = rpc.__dict__["__compose_string_to_sign"]
_sign = rpc.__dict__["__get_signature"]


def run(case):
    method = case["method"]
    secret = case["secret"]
    if case["mode"] == "sdk":
        query = dict(case["query"])
        url, string_to_sign = rpc.get_signed_url(
            query, case["ak"], secret, "JSON", method, dict(case["body"]), sha_hmac1
        )
        # get_signed_url fills `query` in place with the common parameters and the Signature.
        return {"params": query, "string_to_sign": string_to_sign, "signature": query["Signature"]}
    params = dict(case["params"])
    params.pop("Signature", None)
    string_to_sign = _compose(method, params)
    return {"params": None, "string_to_sign": string_to_sign, "signature": _sign(string_to_sign, secret, sha_hmac1)}


def main():
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    results = [run(case) for case in request["cases"]]
    sys.stdout.write(json.dumps({"results": results}, ensure_ascii=True))


if __name__ == "__main__":
    main()

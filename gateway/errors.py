"""Error responses in the OpenAI error body, which every OpenAI SDK parses."""

import json


class GatewayError(Exception):
    """A call the gateway answers itself, with an OpenAI error body."""

    def __init__(self, status, message, error_type, code=None, param=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param

    def body(self):
        error = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        return json.dumps({"error": error}).encode()


def unauthorized(message, code="invalid_api_key"):
    return GatewayError(401, message, "invalid_request_error", code=code)


def forbidden(message):
    return GatewayError(403, message, "invalid_request_error", code="wrong_target")


def bad_request(message, param=None, code=None):
    return GatewayError(400, message, "invalid_request_error", code=code, param=param)


def not_found(message):
    return GatewayError(404, message, "invalid_request_error", code="unknown_url")

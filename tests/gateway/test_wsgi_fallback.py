def test_gateway_path_without_asgi_explains_itself(client):
    response = client.post("/gateway/openai/v1/chat/completions")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "gateway_not_served"

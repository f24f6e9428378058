// Fetches /openapi.json itself so that, when the service has API keys, it can ask for
// one and send it; Swagger UI then uses the same key for "Try it out".
async function description(key) {
  const headers = key ? { Authorization: "Bearer " + key } : {};
  return fetch("/openapi.json", { headers });
}

async function show() {
  let key = null;
  let response = await description(key);
  while (response.status === 401) {
    key = window.prompt("API key (sent as 'Authorization: Bearer <key>')");
    if (key === null) {
      document.getElementById("swagger-ui").textContent =
        "This service needs an API key to show its description.";
      return;
    }
    response = await description(key);
  }
  const ui = SwaggerUIBundle({ spec: await response.json(), dom_id: "#swagger-ui" });
  if (key) ui.preauthorizeApiKey("bearer", key);
  window.ui = ui;
}

show();

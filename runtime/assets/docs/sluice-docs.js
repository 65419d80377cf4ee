// Sluice's /docs: Swagger UI over this service's own /openapi.json, with
// "Try it out" open. The key given under "Authorize" stays in this browser's
// localStorage (persistAuthorization), so it survives a reload. Nothing is
// fetched from elsewhere: no validator badge, no CDN.
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    persistAuthorization: true,
    tryItOutEnabled: true,
    displayRequestDuration: true,
    validatorUrl: null,
  });
});

// The docs page: Swagger UI renders the API's own description, same-origin. No validator
// badge (it would call a server elsewhere) and nothing else fetched from outside.
SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#api-docs",
  validatorUrl: null,
  deepLinking: true,
  tryItOutEnabled: false,
});

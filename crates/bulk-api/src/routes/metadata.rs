//! `GET /fhir/r4/metadata` (CapabilityStatement) and
//! `GET /.well-known/smart-configuration`: what clients discover before a kick-off.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::AppState;

/// The CapabilityStatement: a FHIR R4 server that instantiates the Bulk Data
/// IG's server CapabilityStatement and offers the export operations it implements.
pub(crate) async fn capability_statement(state: web::Data<AppState>) -> HttpResponse {
    let base = format!("{}/fhir/r4", state.public_base_url);
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "kind": "instance",
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "software": {"name": "fhir-bulk", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "FHIR Bulk Data $export", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "description": "Bearer JWT (HS256, RS256 or ES256) on every request",
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "SMART-on-FHIR"
                }]}]
            },
            "resource": [{
                "type": "Patient",
                "operation": [{
                    "name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
                }]
            }, {
                "type": "Group",
                "operation": [{
                    "name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
                }]
            }],
            "operation": [{
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
            }]
        }]
    });
    HttpResponse::Ok().content_type("application/fhir+json").json(body)
}

/// SMART configuration: what clients discover before asking for a token.
/// With backend clients registered, the token endpoint and how to use it;
/// otherwise none is offered (tokens come from the deployment's identity provider).
pub(crate) async fn smart_configuration(state: web::Data<AppState>) -> HttpResponse {
    let body = match &state.smart {
        Some(smart) => json!({
            "token_endpoint": smart.token_url(),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": crate::smart::signing_algorithms(),
            "scopes_supported": ["system/*.read", "system/*.rs"],
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"]
        }),
        None => json!({
            "capabilities": ["permission-v2"],
            "token_endpoint_auth_methods_supported": [],
            "grant_types_supported": [],
            "scopes_supported": []
        }),
    };
    HttpResponse::Ok().json(body)
}

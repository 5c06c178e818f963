//! `/accounts` and `/users`: an organization administrator's management of the
//! organization's accounts and their users. Only `User …, Organization …` credentials of an
//! administrator get through; that is checked before any body is read.

use super::AppState;
use super::error::{ApiError, ApiErrorBody};
use super::extract::{ApiJson, Auth};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use junction_service::{AccountBody, AccountUserView, AccountView, Caller, NewUserView, UserBody};
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts", get(list).post(create))
        .route("/accounts/{id}", get(show).patch(update).delete(remove))
        .route("/accounts/{id}/users", get(list_users).post(create_user))
        .route("/users/{id}", get(show_user).delete(remove_user))
}

/// An authenticated organization administrator.
struct Admin(Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Auth(caller) = Auth::from_request_parts(parts, state).await?;
        state.services.require_admin(&caller)?;
        Ok(Self(caller))
    }
}

fn id(raw: &str, what: &'static str, code: &'static str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code,
            format!("{what} must be a number, got '{raw}'"),
        )
    })
}

fn account_id(raw: &str) -> Result<i64, ApiError> {
    id(raw, "account id", "invalid_account_id")
}

fn user_id(raw: &str) -> Result<i64, ApiError> {
    id(raw, "user id", "invalid_user_id")
}

#[utoipa::path(
    get,
    path = "/accounts",
    tag = "accounts",
    summary = "List the organization's accounts",
    security(("authorization" = [])),
    responses((status = 200, body = [AccountView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
) -> Result<Json<Vec<AccountView>>, ApiError> {
    Ok(Json(state.services.list_accounts(&caller).await?))
}

#[utoipa::path(
    post,
    path = "/accounts",
    tag = "accounts",
    summary = "Create an account",
    request_body = AccountBody,
    security(("authorization" = [])),
    responses((status = 200, body = AccountView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiJson(body): ApiJson<AccountBody>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(state.services.create_account(&caller, body).await?))
}

#[utoipa::path(
    get,
    path = "/accounts/{id}",
    tag = "accounts",
    summary = "Get an account",
    params(("id" = i64, Path, description = "Account id")),
    security(("authorization" = [])),
    responses((status = 200, body = AccountView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn show(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(
        state
            .services
            .get_account(&caller, account_id(&id)?)
            .await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/accounts/{id}",
    tag = "accounts",
    summary = "Change an account",
    params(("id" = i64, Path, description = "Account id")),
    request_body = AccountBody,
    security(("authorization" = [])),
    responses((status = 200, body = AccountView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn update(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AccountBody>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(
        state
            .services
            .update_account(&caller, account_id(&id)?, body)
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/accounts/{id}",
    tag = "accounts",
    summary = "Delete an account with its users and instances",
    params(("id" = i64, Path, description = "Account id")),
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
/// Like `DELETE /instances/{id}`, any body is ignored.
async fn remove(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .services
        .delete_account(&caller, account_id(&id)?)
        .await?;
    Ok(Json(json!({})))
}

#[utoipa::path(
    get,
    path = "/accounts/{id}/users",
    tag = "accounts",
    summary = "List an account's users",
    params(("id" = i64, Path, description = "Account id")),
    security(("authorization" = [])),
    responses((status = 200, body = [AccountUserView]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn list_users(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Json<Vec<AccountUserView>>, ApiError> {
    Ok(Json(
        state
            .services
            .list_account_users(&caller, account_id(&id)?)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/accounts/{id}/users",
    tag = "accounts",
    summary = "Create a user; the response shows its secret once",
    params(("id" = i64, Path, description = "Account id")),
    request_body = UserBody,
    security(("authorization" = [])),
    responses((status = 200, body = NewUserView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn create_user(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<Json<NewUserView>, ApiError> {
    Ok(Json(
        state
            .services
            .create_user(&caller, account_id(&id)?, body)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "accounts",
    summary = "Get a user",
    params(("id" = i64, Path, description = "User id")),
    security(("authorization" = [])),
    responses((status = 200, body = AccountUserView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn show_user(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Json<AccountUserView>, ApiError> {
    Ok(Json(
        state
            .services
            .get_account_user(&caller, user_id(&id)?)
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "accounts",
    summary = "Delete a user",
    params(("id" = i64, Path, description = "User id")),
    security(("authorization" = [])),
    responses((status = 200, body = Object), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)),
)]
async fn remove_user(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.services.delete_user(&caller, user_id(&id)?).await?;
    Ok(Json(json!({})))
}

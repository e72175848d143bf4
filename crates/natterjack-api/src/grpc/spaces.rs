//! The public `Spaces` service: thin adapters from proto requests to the service layer.

use super::call::{GrpcState, Op};
use super::convert;
use super::proto::spaces_server::Spaces;
use super::proto::{
    CreateSpaceRequest, DeleteMessageRequest, DeleteMessageResponse, GetMessageRequest,
    GetSpaceRequest, GrantPermissionsRequest, ListMembersRequest, ListMembersResponse,
    ListMessagesRequest, ListMessagesResponse, ListSpacesRequest, ListSpacesResponse, Member,
    Message, PostMessageRequest, RevokePermissionsRequest, Space, WatchMessagesRequest,
};
use super::status::GrpcError;
use super::watch;
use natterjack_core::domain::{MessageText, SpaceName, Username};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The `Spaces` service over the shared state.
pub struct SpacesService {
    state: GrpcState,
}

impl SpacesService {
    /// The service for the public listener.
    pub fn new(state: GrpcState) -> Self {
        Self { state }
    }
}

fn on_space(method: &'static str, space_id: i64) -> Op {
    Op {
        method,
        target: format!("space_id={space_id}"),
        space: Some(space_id),
    }
}

fn on_message(method: &'static str, space_id: i64, message_id: i64) -> Op {
    Op {
        method,
        target: format!("space_id={space_id} message_id={message_id}"),
        space: Some(space_id),
    }
}

fn username(field: &'static str, raw: &str) -> Result<Username, GrpcError> {
    Username::parse(raw)
        .map_err(|e| natterjack_core::domain::FieldError::new(field, e.reason()).into())
}

#[tonic::async_trait]
impl Spaces for SpacesService {
    async fn create_space(
        &self,
        req: Request<CreateSpaceRequest>,
    ) -> Result<Response<Space>, Status> {
        let op = Op::plain("CreateSpace");
        let service = self.state.app.service.clone();
        self.state
            .unary(req, "Spaces", op, |admitted, msg| async move {
                let name = SpaceName::parse(&msg.name)?;
                let owner = convert::optional(&msg.owner)
                    .map(|o| username("owner", o))
                    .transpose()?;
                let space = service
                    .create_space(&admitted.principal()?, name, owner)
                    .await?;
                Ok(convert::space(space))
            })
            .await
    }

    async fn list_spaces(
        &self,
        req: Request<ListSpacesRequest>,
    ) -> Result<Response<ListSpacesResponse>, Status> {
        let op = Op::plain("ListSpaces");
        let service = self.state.app.service.clone();
        self.state
            .unary(req, "Spaces", op, |admitted, _| async move {
                let spaces = service.list_spaces(&admitted.principal()?).await?;
                Ok(ListSpacesResponse {
                    spaces: spaces.into_iter().map(convert::space).collect(),
                })
            })
            .await
    }

    async fn get_space(&self, req: Request<GetSpaceRequest>) -> Result<Response<Space>, Status> {
        let op = on_space("GetSpace", req.get_ref().space_id);
        let service = self.state.app.service.clone();
        self.state
            .unary(req, "Spaces", op, |admitted, _| async move {
                let access = admitted.access()?;
                Ok(convert::space(service.get_space(&access).await?))
            })
            .await
    }

    async fn post_message(
        &self,
        req: Request<PostMessageRequest>,
    ) -> Result<Response<Message>, Status> {
        let op = on_space("PostMessage", req.get_ref().space_id);
        let service = self.state.app.service.clone();
        self.state
            .unary(req, "Spaces", op, |admitted, msg| async move {
                let access = admitted.access()?;
                let text = MessageText::parse(&msg.message)?;
                Ok(convert::message(service.post_message(&access, text).await?))
            })
            .await
    }

    async fn list_messages(
        &self,
        req: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let op = on_space("ListMessages", req.get_ref().space_id);
        let service = self.state.app.service.clone();
        self.state
            .unary(req, "Spaces", op, |admitted, msg| async move {
                let access = admitted.access()?;
                let page = convert::message_page(&msg)?;
                let messages = service.list_messages(&access, page).await?;
                Ok(ListMessagesResponse {
                    messages: messages.into_iter().map(convert::message).collect(),
                })
            })
            .await
    }

    async fn get_message(
        &self,
        req: Request<GetMessageRequest>,
    ) -> Result<Response<Message>, Status> {
        let (space, id) = (req.get_ref().space_id, req.get_ref().message_id);
        let op = on_message("GetMessage", space, id);
        let service = self.state.app.service.clone();
        self.state
            .unary(req, "Spaces", op, |admitted, msg| async move {
                let access = admitted.access()?;
                let id = convert::message_id(msg.message_id)?;
                Ok(convert::message(service.get_message(&access, id).await?))
            })
            .await
    }

    async fn delete_message(
        &self,
        req: Request<DeleteMessageRequest>,
    ) -> Result<Response<DeleteMessageResponse>, Status> {
        let (space, id) = (req.get_ref().space_id, req.get_ref().message_id);
        let op = on_message("DeleteMessage", space, id);
        let service = self.state.app.service.clone();
        self.state
            .unary(req, "Spaces", op, |admitted, msg| async move {
                let access = admitted.access()?;
                let id = convert::message_id(msg.message_id)?;
                service.delete_message(&access, id).await?;
                Ok(DeleteMessageResponse {})
            })
            .await
    }

    async fn list_members(
        &self,
        req: Request<ListMembersRequest>,
    ) -> Result<Response<ListMembersResponse>, Status> {
        let op = on_space("ListMembers", req.get_ref().space_id);
        let service = self.state.app.service.clone();
        self.state
            .unary(req, "Spaces", op, |admitted, _| async move {
                let access = admitted.access()?;
                let members = service.list_members(&access).await?;
                Ok(ListMembersResponse {
                    members: members.into_iter().map(convert::member).collect(),
                })
            })
            .await
    }

    async fn grant_permissions(
        &self,
        req: Request<GrantPermissionsRequest>,
    ) -> Result<Response<Member>, Status> {
        let op = on_space("GrantPermissions", req.get_ref().space_id);
        let service = self.state.app.service.clone();
        self.state
            .unary(req, "Spaces", op, |admitted, msg| async move {
                let access = admitted.access()?;
                let target = username("username", &msg.username)?;
                let permissions = convert::permissions(&msg.permissions)?;
                let member = service.grant(&access, &target, permissions).await?;
                Ok(convert::member(member))
            })
            .await
    }

    async fn revoke_permissions(
        &self,
        req: Request<RevokePermissionsRequest>,
    ) -> Result<Response<Member>, Status> {
        let op = on_space("RevokePermissions", req.get_ref().space_id);
        let service = self.state.app.service.clone();
        self.state
            .unary(req, "Spaces", op, |admitted, msg| async move {
                let access = admitted.access()?;
                let target = username("username", &msg.username)?;
                let permissions = convert::optional(&msg.permissions)
                    .map(convert::permissions)
                    .transpose()?;
                let left = service.revoke(&access, &target, permissions).await?;
                Ok(Member {
                    username: target.as_str().to_owned(),
                    permissions: left.to_string(),
                })
            })
            .await
    }

    type WatchMessagesStream = ReceiverStream<Result<Message, Status>>;

    async fn watch_messages(
        &self,
        req: Request<WatchMessagesRequest>,
    ) -> Result<Response<Self::WatchMessagesStream>, Status> {
        watch::open(&self.state, req).await
    }
}

//! The Frontend service: one greeter call per request, through the fleet channel.

use flotilla_client::{FleetChannel, answered_by};
use flotilla_proto::demo::{
    frontend::v1::{GreetReply, GreetRequest, frontend_server::Frontend},
    greeter::v1_1_0::{HelloRequest, greeter_client::GreeterClient},
};
use tonic::{Request, Response, Status};

/// Greets by asking whichever greeter instance the fleet channel picks. The frontend was built
/// against greeter 1.1.0's API (it sends `locale`).
#[derive(Debug, Clone)]
pub struct FrontendService {
    greeter: GreeterClient<FleetChannel>,
}

impl FrontendService {
    pub fn new(channel: FleetChannel) -> Self {
        Self {
            greeter: GreeterClient::new(channel),
        }
    }
}

#[tonic::async_trait]
impl Frontend for FrontendService {
    async fn greet(&self, request: Request<GreetRequest>) -> Result<Response<GreetReply>, Status> {
        let GreetRequest { name, locale } = request.into_inner();
        let response = self
            .greeter
            .clone()
            .say_hello(HelloRequest { name, locale })
            .await?;
        let who = answered_by(&response);
        let reply = response.into_inner();
        Ok(Response::new(GreetReply {
            message: reply.message,
            greeter_version: who.as_ref().map(|w| w.version.clone()).unwrap_or_default(),
            greeter_instance: who.map(|w| w.instance_id).unwrap_or_default(),
        }))
    }
}

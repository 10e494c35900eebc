//! The `demo.greeter.v1.Greeter` implementation of each release.

use std::sync::Arc;

use flotilla_proto::demo::greeter::{v1_0_0, v1_1_0, v2_0_0};
use tonic::{Request, Response, Status, service::Routes};

use crate::{Release, faults::Faults};

/// What every release's implementation shares.
#[derive(Debug, Clone)]
pub struct Context {
    /// Who answers, for `served_by`: program, version and address.
    pub served_by: String,
    /// The faults applied before each call.
    pub faults: Arc<Faults>,
}

/// The routes serving `release`'s Greeter.
pub fn routes(release: Release, context: Context) -> Routes {
    match release {
        Release::V1_0_0 => Routes::new(v1_0_0::greeter_server::GreeterServer::new(GreeterV1_0_0(
            context,
        ))),
        Release::V1_1_0 => Routes::new(v1_1_0::greeter_server::GreeterServer::new(GreeterV1_1_0(
            context,
        ))),
        Release::V2_0_0 => Routes::new(v2_0_0::greeter_server::GreeterServer::new(GreeterV2_0_0(
            context,
        ))),
    }
}

/// The words of one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Words {
    locale: &'static str,
    hello: &'static str,
    goodbye: &'static str,
}

const ENGLISH: Words = Words {
    locale: "en",
    hello: "Hello",
    goodbye: "Goodbye",
};

/// The words for a BCP 47 tag, by its primary language subtag; English for anything unknown.
fn words(locale: &str) -> Words {
    let language = locale
        .split(['-', '_'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match language.as_str() {
        "fr" => Words {
            locale: "fr",
            hello: "Bonjour",
            goodbye: "Au revoir",
        },
        "de" => Words {
            locale: "de",
            hello: "Hallo",
            goodbye: "Auf Wiedersehen",
        },
        "es" => Words {
            locale: "es",
            hello: "Hola",
            goodbye: "Adiós",
        },
        _ => ENGLISH,
    }
}

/// "Hello, Ada!"; a missing name greets the world.
fn sentence(word: &str, name: &str) -> String {
    let name = if name.is_empty() { "world" } else { name };
    format!("{word}, {name}!")
}

/// Release 1.0.0: English only.
#[derive(Debug)]
struct GreeterV1_0_0(Context);

#[tonic::async_trait]
impl v1_0_0::greeter_server::Greeter for GreeterV1_0_0 {
    async fn say_hello(
        &self,
        request: Request<v1_0_0::HelloRequest>,
    ) -> Result<Response<v1_0_0::HelloReply>, Status> {
        self.0.faults.before_call().await?;
        Ok(Response::new(v1_0_0::HelloReply {
            message: sentence(ENGLISH.hello, &request.get_ref().name),
        }))
    }
}

/// Release 1.1.0: honours `locale`, fills `served_by`, and says goodbye.
#[derive(Debug)]
struct GreeterV1_1_0(Context);

#[tonic::async_trait]
impl v1_1_0::greeter_server::Greeter for GreeterV1_1_0 {
    async fn say_hello(
        &self,
        request: Request<v1_1_0::HelloRequest>,
    ) -> Result<Response<v1_1_0::HelloReply>, Status> {
        self.0.faults.before_call().await?;
        let request = request.into_inner();
        Ok(Response::new(v1_1_0::HelloReply {
            message: sentence(words(&request.locale).hello, &request.name),
            served_by: self.0.served_by.clone(),
        }))
    }

    async fn say_goodbye(
        &self,
        request: Request<v1_1_0::GoodbyeRequest>,
    ) -> Result<Response<v1_1_0::GoodbyeReply>, Status> {
        self.0.faults.before_call().await?;
        let request = request.into_inner();
        Ok(Response::new(v1_1_0::GoodbyeReply {
            message: sentence(words(&request.locale).goodbye, &request.name),
            served_by: self.0.served_by.clone(),
        }))
    }
}

/// Release 2.0.0: the greeting comes in parts.
#[derive(Debug)]
struct GreeterV2_0_0(Context);

#[tonic::async_trait]
impl v2_0_0::greeter_server::Greeter for GreeterV2_0_0 {
    async fn say_hello(
        &self,
        request: Request<v2_0_0::HelloRequest>,
    ) -> Result<Response<v2_0_0::HelloReply>, Status> {
        self.0.faults.before_call().await?;
        let request = request.into_inner();
        let words = words(&request.locale);
        Ok(Response::new(v2_0_0::HelloReply {
            message: Some(v2_0_0::Greeting {
                salutation: words.hello.to_owned(),
                text: sentence(words.hello, &request.name),
                name: request.name,
                locale: words.locale.to_owned(),
            }),
            served_by: self.0.served_by.clone(),
        }))
    }

    async fn say_goodbye(
        &self,
        request: Request<v2_0_0::GoodbyeRequest>,
    ) -> Result<Response<v2_0_0::GoodbyeReply>, Status> {
        self.0.faults.before_call().await?;
        let request = request.into_inner();
        Ok(Response::new(v2_0_0::GoodbyeReply {
            message: sentence(words(&request.locale).goodbye, &request.name),
            served_by: self.0.served_by.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn context() -> Context {
        Context {
            served_by: "demo-greeter 1.1.0 on 127.0.0.1:1".into(),
            faults: Arc::new(Faults::none()),
        }
    }

    #[test]
    fn locales_pick_the_language_by_primary_subtag() {
        assert_eq!(words("fr").hello, "Bonjour");
        assert_eq!(words("fr-CA").hello, "Bonjour");
        assert_eq!(words("FR_fr").goodbye, "Au revoir");
        assert_eq!(words("de").hello, "Hallo");
        assert_eq!(words(""), ENGLISH);
        assert_eq!(words("tlh"), ENGLISH);
    }

    #[tokio::test]
    async fn release_1_0_0_greets_in_english() {
        use v1_0_0::greeter_server::Greeter;
        let reply = GreeterV1_0_0(context())
            .say_hello(Request::new(v1_0_0::HelloRequest { name: "Ada".into() }))
            .await
            .unwrap();
        assert_eq!(reply.get_ref().message, "Hello, Ada!");
    }

    #[tokio::test]
    async fn release_1_1_0_honours_the_locale_and_says_who_served() {
        use v1_1_0::greeter_server::Greeter;
        let greeter = GreeterV1_1_0(context());
        let reply = greeter
            .say_hello(Request::new(v1_1_0::HelloRequest {
                name: "Ada".into(),
                locale: "fr".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.message, "Bonjour, Ada!");
        assert_eq!(reply.served_by, "demo-greeter 1.1.0 on 127.0.0.1:1");
        let bye = greeter
            .say_goodbye(Request::new(v1_1_0::GoodbyeRequest {
                name: String::new(),
                locale: "en".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(bye.message, "Goodbye, world!");
    }

    #[tokio::test]
    async fn release_2_0_0_answers_a_structured_greeting() {
        use v2_0_0::greeter_server::Greeter;
        let reply = GreeterV2_0_0(context())
            .say_hello(Request::new(v2_0_0::HelloRequest {
                name: "Ada".into(),
                locale: "es-MX".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            reply.message,
            Some(v2_0_0::Greeting {
                salutation: "Hola".into(),
                name: "Ada".into(),
                locale: "es".into(),
                text: "Hola, Ada!".into(),
            })
        );
    }

    #[tokio::test]
    async fn faults_apply_to_every_release() {
        let failing = Context {
            faults: Arc::new(Faults::new(1.0, Duration::ZERO, Some(1))),
            ..context()
        };
        use v1_0_0::greeter_server::Greeter as _;
        let status = GreeterV1_0_0(failing.clone())
            .say_hello(Request::new(v1_0_0::HelloRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        use v1_1_0::greeter_server::Greeter as _;
        let status = GreeterV1_1_0(failing.clone())
            .say_goodbye(Request::new(v1_1_0::GoodbyeRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        use v2_0_0::greeter_server::Greeter as _;
        let status = GreeterV2_0_0(failing)
            .say_hello(Request::new(v2_0_0::HelloRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
    }
}

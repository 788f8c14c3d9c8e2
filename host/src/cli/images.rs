//! `list-images`, `delete-image` and `image`.

use clap::{ArgGroup, Args};
use serde_json::Value;

use super::args::{parse_image_ref, ContextArgs, InstanceArgs};
use crate::ctx::{Context, Globals};
use crate::errors::Result;
use crate::names::ImageRef;
use crate::ops::images;
use crate::roles::Roles;

/// The columns of `cgcloud list-images`, as the original prints them.
const COLUMNS: [&str; 4] = ["name", "ordinal", "id", "state"];

/// List the images of a role (only images owned by this account), oldest first
#[derive(Args, Debug)]
pub struct ListImagesArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// The role
    #[arg(value_name = "ROLE")]
    pub role: String,
    /// Print JSON (an array of objects: name, ordinal, id, state, aws_name, creation_date)
    #[arg(long)]
    pub json: bool,
}

/// Deregister an image of a role and delete its snapshots
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("mode").args(["keep_snapshot", "quick"]).multiple(false)))]
pub struct DeleteImageArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// The role
    #[arg(value_name = "ROLE")]
    pub role: String,
    /// The image: an ordinal among the role's images (-1 is the newest) or an AMI ID
    #[arg(short = 'i', long = "image", default_value = "-1", allow_negative_numbers = true,
          value_parser = parse_image_ref, value_name = "IMAGE")]
    pub image: ImageRef,
    /// Keep the image's snapshots
    #[arg(short = 'K', long = "keep-snapshot")]
    pub keep_snapshot: bool,
    /// Do not wait for the image to be gone; implies --keep-snapshot
    #[arg(short = 'Q', long)]
    pub quick: bool,
}

/// Make an image of a stopped box
#[derive(Args, Debug)]
pub struct ImageArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// The role
    #[arg(value_name = "ROLE")]
    pub role: String,
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Image a box that `cgcloud stop` did not prepare (its disk may still hold its agent's
    /// keys and cloud-init's copy of its user data)
    #[arg(long)]
    pub force: bool,
}

pub async fn list_images(args: ListImagesArgs, g: &Globals) -> Result<()> {
    let ctx = Context::new(&args.context, g).await?;
    let roles = Roles::load(g)?;
    let role = roles.get(&args.role)?;
    let found = images::list(&ctx, &role.image_name_prefix).await?;
    let rows: Vec<Value> = found
        .iter()
        .enumerate()
        .map(|(n, i)| images::row(&ctx, n, i))
        .collect();
    // As `list`: unfinished images are said beside the table.
    for row in &rows {
        let id = row["id"].as_str().unwrap_or_default();
        match row["setup"].as_str() {
            Some(crate::ops::progress::ABANDONED) => g.shell.warn(format!(
                "image `{id}` was never finished: the run making it stopped; `cgcloud cleanup` removes it"
            )),
            Some(crate::ops::progress::SETTING_UP) => {
                g.shell.info(format!("image `{id}` is still being made by a cgcloud run"))
            }
            _ => {}
        }
    }
    g.shell.rows(&COLUMNS, rows, args.json);
    Ok(())
}

pub async fn delete_image(args: DeleteImageArgs, g: &Globals) -> Result<()> {
    let ctx = Context::new(&args.context, g).await?;
    let roles = Roles::load(g)?;
    let role = roles.get(&args.role)?;
    let image = images::resolve(&ctx, &role.name, &role.image_name_prefix, &args.image).await?;
    let id = image.image_id().unwrap_or_default();
    crate::ops::instances::check_owner_tag(
        &ctx,
        &format!("image `{id}`"),
        crate::aws::tag(image.tags(), crate::ops::prepare::OWNER_TAG),
        &format!("--resources {id}"),
    )?;
    images::delete(&ctx, &image, args.keep_snapshot, args.quick).await
}

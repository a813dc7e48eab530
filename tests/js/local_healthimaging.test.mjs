// The local HealthImaging judged by the AWS SDK for JavaScript v3 under node's test
// runner. Run by .ci/node, which installs the SDK into a folder of its own
// (AWS_SDK_DIR), starts `reconciler emulator serve --seed` with its default quota
// profile and passes its URL (LOCAL_HEALTHIMAGING_URL). The only settings a JavaScript
// client needs: the endpoint, and disableHostPrefix (docs/local-healthimaging.md).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { gunzipSync } from "node:zlib";

const sdk = createRequire(`${process.env.AWS_SDK_DIR}/node_modules/`);
const mi = sdk("@aws-sdk/client-medical-imaging");
const { STSClient, GetCallerIdentityCommand } = sdk("@aws-sdk/client-sts");

const endpoint = process.env.LOCAL_HEALTHIMAGING_URL;
const settings = {
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "AKIDJAVASCRIPT", secretAccessKey: "local" },
};
const client = new mi.MedicalImagingClient({ ...settings, disableHostPrefix: true });

async function seeded() {
  const { datastoreSummaries } = await client.send(new mi.ListDatastoresCommand({}));
  const active = datastoreSummaries.filter((d) => d.datastoreStatus === "ACTIVE");
  assert.ok(active.length > 0, "the seeded data store is listed");
  return active[0].datastoreId;
}

async function documentOf(datastoreId, imageSetId) {
  const answer = await client.send(
    new mi.GetImageSetMetadataCommand({ datastoreId, imageSetId }),
  );
  assert.equal(answer.contentEncoding, "gzip");
  const bytes = await answer.imageSetMetadataBlob.transformToByteArray();
  return JSON.parse(gunzipSync(Buffer.from(bytes)).toString("utf-8"));
}

async function settled(datastoreId, imageSetId) {
  for (let i = 0; i < 200; i++) {
    const props = await client.send(new mi.GetImageSetCommand({ datastoreId, imageSetId }));
    if (props.imageSetState !== "LOCKED") return props;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`image set ${imageSetId} stayed LOCKED`);
}

test("validation errors are worded as the service words them", async () => {
  await assert.rejects(
    client.send(new mi.GetDatastoreCommand({ datastoreId: "DATASTORE_ID" })),
    (err) => {
      assert.equal(err.name, "ValidationException");
      assert.equal(
        err.message,
        "1 validation error detected: Value 'DATASTORE_ID' at 'datastoreId' failed to " +
          "satisfy constraint: Member must satisfy regular expression pattern: [0-9a-z]{32}",
      );
      return true;
    },
  );
});

test("image sets carry their storage tier, last access and metadata fields", async () => {
  const datastoreId = await seeded();
  const found = [];
  for await (const page of mi.paginateSearchImageSets(
    { client, pageSize: 5 },
    { datastoreId, searchCriteria: {} },
  )) {
    found.push(...page.imageSetsMetadataSummaries);
  }
  assert.ok(found.length >= 10, `search pages through every seeded image set (${found.length})`);
  assert.ok(found.every((s) => s.storageTier === "FREQUENT_ACCESS"));
  const props = await client.send(
    new mi.GetImageSetCommand({ datastoreId, imageSetId: found[0].imageSetId }),
  );
  assert.ok(props.lastAccessedAt instanceof Date && props.createdAt instanceof Date);
  assert.equal(props.createdAt.getTime() % 1, 0); // whole milliseconds
  const doc = await documentOf(datastoreId, found[0].imageSetId);
  for (const series of Object.values(doc.Study.Series)) {
    for (const instance of Object.values(series.Instances)) {
      assert.equal(typeof instance.DICOMVRs, "object");
      if (instance.ImageFrames.length > 0) assert.ok(instance.StoredTransferSyntaxUID);
    }
  }
});

test("an instance leaves a primary image set without force, back to back", async () => {
  const datastoreId = await seeded();
  const { imageSetsMetadataSummaries: all } = await client.send(
    new mi.SearchImageSetsCommand({ datastoreId }),
  );
  const multi = all.find((s) => s.isPrimary && s.DICOMTags.DICOMNumberOfStudyRelatedInstances > 1);
  assert.ok(multi, "a seeded primary image set with more than one instance");
  const doc = await documentOf(datastoreId, multi.imageSetId);
  const [seriesUid, series] = Object.entries(doc.Study.Series).find(
    ([, s]) => Object.keys(s.Instances).length > 1,
  ) ?? Object.entries(doc.Study.Series)[0];
  const sop = Object.keys(series.Instances)[0];
  const removal = { SchemaVersion: 1.1, Study: { Series: { [seriesUid]: { Instances: { [sop]: {} } } } } };
  const removed = await client.send(
    new mi.UpdateImageSetMetadataCommand({
      datastoreId,
      imageSetId: multi.imageSetId,
      latestVersionId: String(multi.version),
      updateImageSetMetadataUpdates: {
        DICOMUpdates: { removableAttributes: new TextEncoder().encode(JSON.stringify(removal)) },
      },
    }),
  );
  assert.equal(removed.imageSetWorkflowStatus, "UPDATING");
  const after = await settled(datastoreId, multi.imageSetId);
  assert.equal(after.imageSetWorkflowStatus, "UPDATED");
  // A second update right away: the default quota profile (the throttling page's
  // newest text) allows a burst of 40 updates.
  const change = { SchemaVersion: 1.1, Study: { DICOM: { StudyDescription: "FROM JAVASCRIPT" } } };
  await client.send(
    new mi.UpdateImageSetMetadataCommand({
      datastoreId,
      imageSetId: multi.imageSetId,
      latestVersionId: after.versionId,
      updateImageSetMetadataUpdates: {
        DICOMUpdates: { updatableAttributes: new TextEncoder().encode(JSON.stringify(change)) },
      },
    }),
  );
  await settled(datastoreId, multi.imageSetId);
  const changed = await documentOf(datastoreId, multi.imageSetId);
  assert.equal(changed.Study.DICOM.StudyDescription, "FROM JAVASCRIPT");
  assert.equal(sop in changed.Study.Series[seriesUid].Instances, false);
});

test("a frame comes back as HTJ2K", async () => {
  const datastoreId = await seeded();
  const { imageSetsMetadataSummaries: all } = await client.send(
    new mi.SearchImageSetsCommand({ datastoreId }),
  );
  for (const summary of all) {
    const doc = await documentOf(datastoreId, summary.imageSetId);
    for (const series of Object.values(doc.Study.Series)) {
      for (const instance of Object.values(series.Instances)) {
        if (instance.StoredTransferSyntaxUID !== "1.2.840.10008.1.2.4.202") continue;
        const answer = await client.send(
          new mi.GetImageFrameCommand({
            datastoreId,
            imageSetId: summary.imageSetId,
            imageFrameInformation: { imageFrameId: instance.ImageFrames[0].ID },
          }),
        );
        assert.equal(answer.contentType, "image/jph");
        const bytes = await answer.imageFrameBlob.transformToByteArray();
        assert.deepEqual([...bytes.slice(4, 8)], [...Buffer.from("jP  ")]);
        return;
      }
    }
  }
  assert.fail("no seeded instance stored as HTJ2K");
});

test("STS names the caller in the emulator's account", async () => {
  const sts = new STSClient(settings);
  const identity = await sts.send(new GetCallerIdentityCommand({}));
  assert.equal(identity.Account, "123456789012");
  assert.equal(identity.Arn, "arn:aws:iam::123456789012:user/AKIDJAVASCRIPT");
});

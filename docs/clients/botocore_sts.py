# boto3 / botocore through the agent: HTTPS_PROXY is honoured; AWS_CA_BUNDLE (or verify=) names the bundle
# the client trusts, and it replaces the default one: system roots plus the inspection CA.
import json
import botocore.session

sts = botocore.session.get_session().create_client("sts", region_name="us-east-1")
me = sts.get_caller_identity()
print(json.dumps({"Account": me["Account"], "Arn": me["Arn"]}))

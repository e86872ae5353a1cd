DROP FUNCTION IF EXISTS platform.subscriptions_by_plan();
